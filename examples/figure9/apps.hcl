# The paper's Figure 9, without a metadata proxy: three agents find their master
# because weft hands them its address in the environment (MASTER) when they start.
# The master prints every registration it receives (`weft logs master-1`) and answers
# "ok"; an agent retries until it gets that answer (a connection the master never
# accepted, queued while it served another one, is not a registration).

app "master" {
  instances = 1
  cmd       = "while true; do echo ok | busybox nc -l -p 5050; done"
  cpus      = 0.1
  mem       = 32
  epg       = "mesos/cluster/masters"

  health_check {
    type     = "tcp"
    port     = 5050
    interval = "2s"
    timeout  = "1s"
  }
}

app "agent" {
  instances = 3
  cmd       = "until echo \"registered $WEFT_TASK from $WEFT_IP on $WEFT_NODE\" | busybox nc -w 2 $MASTER 5050 | grep -q ok; do sleep 1; done; exec sleep 1000000"
  cpus      = 0.1
  mem       = 32
  epg       = "mesos/cluster/agents"

  env = {
    MASTER = "${app.master.address}"
  }

  restart {
    backoff        = "1s"
    backoff_factor = 2.0
    max_delay      = "30s"
  }
}
