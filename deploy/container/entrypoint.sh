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

cmd=$1
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
