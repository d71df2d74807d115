#!/bin/sh
# Entrypoint of the dag-workflow-engine image: one image, one role per container.
#
#   entrypoint.sh [ROLE] [OPTIONS...]     ->  exec dag-service ROLE [OPTIONS...]
#
# ROLE is a dag-service command:
#   api            the HTTP API
#   orchestrator   applies events, dispatches ready nodes, fires timers (any number of replicas)
#   worker         executes tasks (any number of replicas; --concurrency N or WORKER_CONCURRENCY)
#   web            the HTTP API and an orchestrator (in a child process), as in the seed
#   up             everything in one process (embedded backend unless ENGINE_BACKEND=redis)
#   check          exit 0 if the backend answers (container health checks)
#   run, validate  run or check a workflow file, e.g. `run examples/scenario_a_linear.json`
# Anything else (--help, another command) is passed to dag-service as is; `dag-service ROLE ...` works
# too. No argument means `api`.
#
# All settings come from environment variables (REDIS_HOST, REDIS_PORT, REDIS_DB or REDIS_URL,
# ENGINE_BACKEND, API_*, WORKER_CONCURRENCY, VISIBILITY_TIMEOUT_SECONDS, LOG_LEVEL, ...). There is no
# wait for Redis here: the engine retries, the restart policy covers the rest, and the health checks
# ask Redis (`check`, or the lighter `python -m services.health_probe` that docker-compose.yml uses).
#
# `exec` replaces this shell, so SIGTERM from `docker stop` reaches the engine itself, which stops
# gracefully (a worker finishes the attempts it holds before it exits).
set -eu

if [ "$#" -eq 0 ]; then
    set -- api
fi

case "$1" in
    api | orchestrator | worker | web | up | check | run | validate)
        exec dag-service "$@"
        ;;
    dag-service)
        shift
        exec dag-service "$@"
        ;;
    *)
        exec dag-service "$@"
        ;;
esac
