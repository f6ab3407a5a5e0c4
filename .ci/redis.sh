# Sourced by .ci/setup and .ci/run: is a Redis answering, and start a throwaway one when none is.
# The tests use the Redis at ORCHESTRATOR_TEST_REDIS_URL (default redis://127.0.0.1:6379/0).

# shellcheck source=.ci/at_exit.sh
. "$(dirname "${BASH_SOURCE[0]}")/at_exit.sh"

redis_answers() {  # HOST PORT: true when a Redis there answers PING
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2 && printf 'PING\r\n' >&3 && IFS= read -r line <&3 && [[ \$line == +PONG* ]]" \
    2>/dev/null
}

start_throwaway_redis() {  # when nothing answers on 6379: a redis-server on a free port, gone with this shell
  if [ -n "${ORCHESTRATOR_TEST_REDIS_URL:-}" ] || redis_answers 127.0.0.1 6379; then
    return 0
  fi
  local port
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  THROWAWAY_REDIS_PID=$!
  at_exit 'kill "$THROWAWAY_REDIS_PID" 2>/dev/null'
  for _ in $(seq 50); do
    redis_answers 127.0.0.1 "$port" && break
    sleep 0.1
  done
  export ORCHESTRATOR_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  echo "run: no Redis on 127.0.0.1:6379; started a throwaway one on port $port" >&2
}
