# The paper's Figure 9, without a metadata proxy: three agents find their master
# because weft hands them its address in the environment (MASTER) when they start.
# The master prints every registration it receives (`weft logs master-1`) and answers
# "ok"; an agent retries until it gets that answer.
#
# The master is one persistent listener (`nc -ll`, a child per connection), so agents
# and health checks arriving together are all served rather than refused between two
# listeners; each child reads one line, writes it to the master's log (fd 3) and answers
# ok. An agent bounds every attempt with `timeout`: busybox's `nc -w` bounds only the
# connect, and a read that never ends would stop the retries for good.

app "master" {
  instances = 1
  cmd       = "exec 3>&1; exec busybox nc -ll -p 5050 -e busybox sh -c 'read -r line && echo \"$line\" >&3; echo ok'"
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
  cmd       = "until echo \"registered $WEFT_TASK from $WEFT_IP on $WEFT_NODE\" | busybox timeout 5 busybox nc -w 2 $MASTER 5050 | grep -q ok; do sleep 1; done; exec sleep 1000000"
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
