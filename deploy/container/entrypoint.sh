#!/bin/sh
# Container entry point: the first argument names the program, so one image runs either daemon.
#   dispatcher --config /etc/forgejo-nsc/dispatcher.yaml
#   autoscaler --config /etc/forgejo-nsc/autoscaler.yaml
#   cli status …            (or just: status …, provision …)
# Anything else is run as given (sh, nsc, forgejo-runner), for debugging.
set -eu

usage() {
  cat >&2 <<'USAGE'
usage: <image> dispatcher --config <file> [--check]
       <image> autoscaler --config <file> [--check]
       <image> cli <status|provision> …
USAGE
}

if [ "$#" -eq 0 ]; then
  usage
  exit 64
fi

# Raise the soft file limit to the hard one: container runtimes often start at 1024, which a
# connection flood and the nsc processes share. The daemons cap connections at http.max_connections.
raise_file_limit() {
  hard=$(ulimit -H -n 2>/dev/null || echo "")
  case "$hard" in
    unlimited) ulimit -n 1048576 2>/dev/null || true ;;
    '' | *[!0-9]*) ;;
    *) ulimit -n "$hard" 2>/dev/null || true ;;
  esac
}

cmd=$1
case "$cmd" in
  dispatcher | autoscaler) raise_file_limit ;;
esac
case "$cmd" in
  dispatcher) shift; exec forgejo-nsc-dispatcher "$@" ;;
  autoscaler) shift; exec forgejo-nsc-autoscaler "$@" ;;
  cli | forgejo-nsc) shift; exec forgejo-nsc "$@" ;;
  status | provision) exec forgejo-nsc "$@" ;;
  help | -h | --help) usage; exit 0 ;;
  -*)
    echo "forgejo-nsc: \"$cmd\" needs a program before it: dispatcher, autoscaler or cli" >&2
    usage
    exit 64
    ;;
  *) exec "$@" ;;
esac
