# Sourced by the service scripts (.ci/redis.sh, .ci/postgres.sh): one EXIT trap that runs every cleanup
# they registered, newest first, so a throwaway Redis and a throwaway PostgreSQL both go with the shell.

if [ -z "${CI_AT_EXIT_LOADED:-}" ]; then
  CI_AT_EXIT_LOADED=1
  CI_AT_EXIT=()

  at_exit() {  # COMMAND: run it (with eval) when the shell exits
    CI_AT_EXIT=("$1" "${CI_AT_EXIT[@]}")
    trap 'for cleanup in "${CI_AT_EXIT[@]}"; do eval "$cleanup" || true; done' EXIT
  }
fi
