# The network of the paper's Figure 9, discovered over DNS: two masters and three agents
# of one cluster, each app its own EPG. Agents may reach the masters' registration port,
# and nothing else is open. The masters' lock and the agents' lookups go to the gateway
# (DNS on 53, Consul's HTTP API on 8500), which policy does not filter.

tenant "mesos" {
  vrf "main" {}

  bridge_domain "cluster" {
    vrf = "main"
    subnet "10.20.0.0/24" {
      gateway = "10.20.0.1"
    }
  }

  filter "registration" {
    entry "tcp-5050" {
      protocol         = "tcp"
      destination_port = 5050
    }
  }

  contract "agents-to-master" {
    subject "register" {
      filters = ["registration"]
    }
  }

  application_profile "cluster" {
    epg "masters" {
      bridge_domain = "cluster"
      provides      = ["agents-to-master"]
    }
    epg "agents" {
      bridge_domain = "cluster"
      consumes      = ["agents-to-master"]
    }
  }
}
