# The seed paper's Table 1: three networks, each its own EPG and bridge domain.
# A "router" joins NW-A and NW-B: a contract permitting IP both ways. NW-C has none.

tenant "lab" {
  vrf "main" {}

  bridge_domain "nw-a" {
    vrf = "main"
    subnet "10.1.0.0/24" { gateway = "10.1.0.1" }
  }
  bridge_domain "nw-b" {
    vrf = "main"
    subnet "10.2.0.0/24" { gateway = "10.2.0.1" }
  }
  bridge_domain "nw-c" {
    vrf = "main"
    subnet "10.3.0.0/24" { gateway = "10.3.0.1" }
  }

  filter "ip" {
    entry "ip" { protocol = "any" }
  }

  contract "router-a-b" {
    subject "ip" { filters = ["ip"] }
  }

  application_profile "nets" {
    epg "nw-a" {
      bridge_domain = "nw-a"
      consumes      = ["router-a-b"]
      provides      = ["router-a-b"]
    }
    epg "nw-b" {
      bridge_domain = "nw-b"
      consumes      = ["router-a-b"]
      provides      = ["router-a-b"]
    }
    epg "nw-c" {
      bridge_domain = "nw-c"
    }
  }
}
