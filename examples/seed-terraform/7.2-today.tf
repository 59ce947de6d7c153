# The seed paper's appendix file 7.2 (7.2-mesos-cluster-nova-docker.tf), with the
# smallest changes that Terraform >= 1.0 (or OpenTofu) and the OpenStack provider 3.x
# need, pointed at weft. README.md beside this file lists every change and its reason.

terraform {
  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.4"
    }
  }
}

provider "openstack" {
  user_name = "admin"
  tenant_name = "demo"
  password = "password"
  auth_url = "http://127.0.0.1:5000/v3"
  region = "RegionOne"
}

resource "openstack_networking_network_v2" "mesos-cluster" {
  name = "mesos-cluster"
  admin_state_up = "true"
  region = "RegionOne"
}

resource "openstack_networking_subnet_v2" "subnet_1" {
  network_id = "${openstack_networking_network_v2.mesos-cluster.id}"
  cidr = "192.168.199.0/24"
  ip_version = 4
}

resource "openstack_networking_router_v2" "rt1" {
  region = "RegionOne"
  name = "rt1"
}

resource "openstack_networking_router_interface_v2" "router_interface_1" {
  region = "RegionOne"
  router_id = "${openstack_networking_router_v2.rt1.id}"
  subnet_id = "${openstack_networking_subnet_v2.subnet_1.id}"
}

resource "openstack_compute_instance_v2" "messos-master" {
  name = "messos-master"
  image_name = "mesos"
  flavor_name = "m1.tiny"
security_groups = ["default"]
region = "RegionOne"
network {
  uuid = "${openstack_networking_network_v2.mesos-cluster.id}"
}
depends_on = [openstack_networking_router_interface_v2.router_interface_1]
}

resource "openstack_compute_instance_v2" "messos-slave" {
  name = "messos-slave"
  image_name = "mesos"
  flavor_name = "m1.tiny"
  security_groups = ["default"]
  region = "RegionOne"
  count = 3
  network {
    uuid = "${openstack_networking_network_v2.mesos-cluster.id}"
  }
  metadata = {
    master = "${openstack_compute_instance_v2.messos-master.access_ip_v4}"
  }
}
