# The seed's open problem 1: a three-tier application inside ONE cluster, segmented.
# web may call app on tcp/8080, app may call db on tcp/5432, and nothing else.

tenant "shop" {
  vrf "main" {}

  bridge_domain "net" {
    vrf = "main"
    subnet "10.1.0.0/24" {
      gateway = "10.1.0.1"
    }
  }

  filter "http-8080" {
    entry "tcp-8080" {
      protocol         = "tcp"
      destination_port = 8080
    }
  }

  filter "postgres" {
    entry "tcp-5432" {
      protocol         = "tcp"
      destination_port = 5432
    }
  }

  contract "web-to-app" {
    subject "http" {
      filters = ["http-8080"]
    }
  }

  contract "app-to-db" {
    subject "sql" {
      filters = ["postgres"]
    }
  }

  application_profile "store" {
    epg "web" {
      bridge_domain = "net"
      consumes      = ["web-to-app"]
    }
    epg "app" {
      bridge_domain = "net"
      provides      = ["web-to-app"]
      consumes      = ["app-to-db"]
    }
    epg "db" {
      bridge_domain = "net"
      provides      = ["app-to-db"]
    }
  }
}
