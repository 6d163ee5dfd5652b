"""db-ha: the write path's HA loop, one per MariaDB node (the pattern of Patroni with etcd).

Modules:
  gtid      GTID positions: parse, compare, format (the one place)
  dcs       etcd through its JSON gateway: keys, leases, transactions
  cluster   what etcd says about the cluster, read in one request
  mariadb   the local server and, for fencing and catching up, the others
  plan      the pure decision: given what is seen, what to do now
  daemon    the loop that carries plans out, the lease renewer, the guard,
            and the HTTP face HAProxy checks (/primary, /read)
"""
