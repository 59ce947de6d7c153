# The paper's Figure 9 over DNS: two masters elect a leader through a Consul session lock
# at their gateway, and three agents find the masters through DNS (master.service.weft)
# and register with the one that answers: only the leader listens. Nothing is handed
# over in the environment. README.md spells the two scripts out line by line.
#
# master: `http METHOD PATH [BODY]` speaks HTTP/1.0 to the Consul API at $WEFT_GATEWAY
# with busybox nc and prints the body (keeping its side open 1s: a request half-closed
# at once is dropped by the gateway). The master creates a session (TTL 10s, lock-delay
# 1s), tries to acquire the key mesos/leader with its IP every 2s (renewing the session
# in between) and, once it holds the lock, renews every 4s in the background and serves
# registrations on 5050 (busybox nc -ll forks a handler per connection; fd 3 is the
# task's stdout): it prints each one and answers "ok" once it has read it. A master
# whose session is gone ("not found") exits, and weft restarts it as a standby.
#
# Failover: a dead leader stops renewing; its session expires 6-10s after the kill (the
# TTL after its last renewal), the lock is released with a 1s lock-delay, and the
# standby, trying every 2s, takes it: 7-13s after the leader died.

app "master" {
  instances = 2
  cmd       = "http() { { printf '%s %s HTTP/1.0\\r\\nContent-Length: %s\\r\\n\\r\\n%s' \"$1\" \"$2\" \"$${#3}\" \"$3\"; sleep 1; } | busybox nc -w 5 \"$WEFT_GATEWAY\" 8500 | tr -d '\\r' | sed '1,/^$/d'; }; lost() { http PUT \"/v1/session/renew/$1\" | grep -q 'not found'; }; sid=; until [ -n \"$sid\" ]; do sid=$(http PUT /v1/session/create '{\"Name\":\"mesos-master\",\"TTL\":\"10s\",\"LockDelay\":\"1s\"}' | grep '\"ID\"' | cut -d'\"' -f4); [ -n \"$sid\" ] || sleep 1; done; echo \"$WEFT_TASK: standby (session $sid)\"; until [ \"$(http PUT \"/v1/kv/mesos/leader?acquire=$sid\" \"$WEFT_IP\")\" = true ]; do lost \"$sid\" && exit 1; done; echo \"$WEFT_TASK: leader (holds mesos/leader)\"; (until lost \"$sid\"; do sleep 3; done; echo \"$WEFT_TASK: lost the lock\"; kill 0) & busybox nc -ll -p 5050 -e sh -c 'read -r line; echo ok; [ -z \"$line\" ] || echo \"$line\" >&3' 3>&1"
  cpus      = 0.1
  mem       = 32
  epg       = "mesos/cluster/masters"
  ports     = { api = 5050 }

  # A master that died comes back after 15s, longer than the session TTL and the
  # lock-delay: the standby takes the lock first, and the old leader returns as standby.
  restart {
    backoff        = "15s"
    backoff_factor = 1.0
    max_delay      = "15s"
  }
}

# agent: resolves master.service.weft (glibc getent, at the gateway), registers with the
# first address that accepts, and every 2s checks that its master still accepts
# connections; when it does not, it resolves and registers again.

app "agent" {
  instances = 3
  cmd       = "register() { echo \"registered $WEFT_TASK from $WEFT_IP on $WEFT_NODE\" | busybox nc -w 2 \"$1\" 5050 | grep -q ok; }; alive() { busybox nc -w 2 \"$1\" 5050 </dev/null >/dev/null; }; master=; while true; do if [ -z \"$master\" ] || ! alive \"$master\"; then master=; for ip in $(getent ahostsv4 master.service.weft | busybox awk '!seen[$1]++ { print $1 }'); do if register \"$ip\"; then master=$ip; echo \"$WEFT_TASK: registered with the master at $ip\"; break; fi; done; fi; sleep 2; done"
  cpus      = 0.1
  mem       = 32
  epg       = "mesos/cluster/agents"

  restart {
    backoff        = "1s"
    backoff_factor = 2.0
    max_delay      = "30s"
  }
}
