#!/usr/bin/env bash
# envision-spiders: set-up and the weekly pipeline, in one script. `./automation.sh help`
# lists the steps (usage() below); with no step it runs the real weekly pipeline.
set -Eeuo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STEP=${1:-all}
shift || true

usage() {
    cat <<'USAGE'
Usage: ./automation.sh [STEP] [ARGS...]

Without a STEP it runs "all": the REAL weekly pipeline against the live APIs of the seven
sources (scrape, classify, download, post, recall, report). It takes hours (OSF allows anonymous
clients 100 requests an hour) and downloads the files of every confident EYE_IMAGING
record. To try the project first, run "./automation.sh demo" (offline, a few minutes).

Steps:
  all        the weekly pipeline (the default): scrape, classify, download, post, recall, report
  scrape     scrapy crawl all: every spider in one process (ARGS go to scrapy crawl)
  classify   scrapy classify: label saved records, write results/ and the review page
  download   scrapy download: the files of confident EYE_IMAGING records
  post       scrapy post: confident EYE_IMAGING records to the portal (skipped without PORTAL_URL)
  recall     scrapy recall: the reference catalogue of known datasets against the saved records
  report     scrapy report: the review page results/report.html
  demo       the whole pipeline offline against the local API server (data/demo, results/demo)
  test       set up, then run the test suite (ARGS go to pytest)
  setup      create .venv/ (Python >= 3.10) and install the project; every other step
             does it first when it is missing or pyproject.toml changed
  help       this text (also -h, --help)

Environment: DATA_DIR, RESULTS_DIR, RUN_ID and every setting of README.md (or .env);
PYTHON (the interpreter for .venv, default python3); TORCH_SPEC (default torch==2.13.0;
elsewhere than the project's machines set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
to avoid a multi-GB CUDA download); DEMO_DATA_DIR, DEMO_RESULTS_DIR, DEMO_RECORDS, DEMO_PORT.
Exit status: 0 when the run is healthy; a failed step's own status (2: bad input); else 1
when the run is unhealthy (data/runs/RUN_ID/summary.json says why).
USAGE
}

say() { printf '%s [automation] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

# A setting as the Python side sees it: the environment, else .env (python-dotenv's
# precedence), else empty.
setting() {
    local name=$1
    if [ -n "${!name:-}" ]; then printf '%s' "${!name}"; return; fi
    [ -f .env ] && sed -n "s/^[[:space:]]*$name[[:space:]]*=[[:space:]]*//p" .env | tail -n 1 | tr -d '"'"'"'\r'
    return 0
}
DATA_DIR=$(setting DATA_DIR)
export DATA_DIR=${DATA_DIR:-data}
# One id per run: every spider's summary, the log and the step summaries go to
# $DATA_DIR/runs/$RUN_ID/.
export RUN_ID=${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}

# Two cron runs never overlap: the second one exits at once with a clear message. The
# kernel frees the flock when its holder dies; the owner file (pid, run, step), removed
# by a run that ends, then still names the dead run, and the new run says it takes over.
LOCK_OWNER=""
lock() {
    # DATA_DIR as it is now (the demo moves it to data/demo before it locks)
    LOCK_OWNER="$DATA_DIR/.automation.lock.owner"
    mkdir -p "$DATA_DIR"
    exec 9>>"$DATA_DIR/.automation.lock"
    if ! flock -n 9; then
        die "another automation.sh run is still going (pid, run and step: $(cat "$LOCK_OWNER" 2>/dev/null || echo unknown)); not starting a second one"
    fi
    local owner pid run step
    owner=$(cat "$LOCK_OWNER" 2>/dev/null || true)
    if [ -n "$owner" ]; then
        read -r pid run step <<<"$owner"
        if ! kill -0 "${pid:-0}" 2>/dev/null; then
            say "WARNING: taking over the lock of run ${run:-?} (pid ${pid:-?}, step ${step:-?}), which is dead: it ended without releasing it (killed?); its summary may be missing"
        fi
    fi
    echo "$$ $RUN_ID $STEP" >"$LOCK_OWNER"
    LOCKED=1
    # released however the script ends (finish_run releases it once it owns the trap)
    trap 'unlock; eval "$CLEANUP"' EXIT
}
LOCKED=0
CLEANUP=""
unlock() { if [ "$LOCKED" = 1 ]; then rm -f "$LOCK_OWNER"; LOCKED=0; fi; }

# SIGTERM or Ctrl-C (SIGINT): the running step gets SIGTERM (Scrapy's graceful stop: rate
# waits end, the spiders close and write their summaries and failures), the steps after
# it do not run, and the run's summary.json is still written (finish_run). A second
# signal is passed on too (Scrapy then stops at once).
STOPPED=""
CHILD=""
on_signal() {
    STOPPED=$1
    say "received SIG$1: stopping the current step (its summary and failures are kept); no further steps"
    if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null || true; fi
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT

# Everything this run prints also goes to $DATA_DIR/runs/$RUN_ID/automation.log.
log_run() {
    mkdir -p "$DATA_DIR/runs/$RUN_ID"
    exec > >(tee -a "$DATA_DIR/runs/$RUN_ID/automation.log") 2>&1
    say "run $RUN_ID: step '$STEP', data in $DATA_DIR"
}

setup() {
    local stamp="$VENV/.envision-installed"
    if [ -x "$VENV/bin/scrapy" ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
        return 0
    fi
    say "setting up $VENV (first run or pyproject.toml changed)"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
        || die "$PYTHON is older than Python 3.10"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # torch first, pinned, so nothing later pulls a multi-GB CUDA build
    "$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
    "$VENV/bin/python" -m pip install -q -e ".[test,deploy]"
    touch "$stamp"
    say "set-up done"
}

# A step's command runs in the background and is waited for, so that a signal reaches
# this script at once (bash runs traps only between commands) and is passed on to it.
scrapy_() {
    local rc=0
    "$VENV/bin/scrapy" "$@" &
    CHILD=$!
    # `wait` returns early when a trapped signal arrives: wait again until the child exits
    while :; do
        rc=0
        wait "$CHILD" || rc=$?
        kill -0 "$CHILD" 2>/dev/null || break
    done
    CHILD=""
    return "$rc"
}
abspath() { "$VENV/bin/python" -c 'import os, sys; print(os.path.realpath(sys.argv[1]))' "$1"; }

step_scrape() { say "scrape: every spider, one process"; scrapy_ crawl all "$@"; }
# Labels for every saved record the current model has not labelled yet, then results/
# (every record on disk, duplicates marked) and the review page results/report.html.
step_classify() { say "classify: label saved records, write results/ and the review page"; scrapy_ classify "$@"; }
# The review page again, with this run's downloads and posts in its figures.
step_report() { say "report: results/report.html"; scrapy_ report "$@"; }
# Files of confident EYE_IMAGING records no curator rejected (the queue and
# results/*_eye_imaging.json) into $DATA_DIR/downloads/; exit 1 (stopping the run) when a file failed: it stays queued.
step_download() { say "download: confident EYE_IMAGING records"; scrapy_ download "$@"; }
# Records curators accepted to the envision portal (scrapy post: only new or changed ones;
# with POST_REQUIRES_REVIEW=0 also confident EYE_IMAGING records nobody rejected). It says
# how many records wait for review (scrapy review, or the review page) and lists posted
# datasets a curator rejected since; exit 1 when the portal refused the key or a body, or
# a record failed. Curators who do not post leave PORTAL_URL unset: the step says so and
# the run goes on.
step_post() {
    if [ -z "$(setting PORTAL_URL)" ]; then
        say "post: PORTAL_URL is not set (environment or .env): nothing is posted; step skipped"
        return 0
    fi
    say "post: records curators accepted to the envision portal"
    scrapy_ post "$@"
}

# How much of the reference catalogue (known eye imaging datasets) this run found,
# labelled, downloaded and posted, and why not: results/recall.json and the run's figures.
# Exit 3 when recall dropped since the previous check (the run goes on, ends unhealthy).
step_recall() { say "recall: the reference catalogue against the saved records"; scrapy_ recall "$@"; }

step_test() {
    say "tests"
    CI=true "$VENV/bin/python" -m pytest -q "$@"
}

step_demo() {
    # Everything offline: a local API server with generated records of the real shapes,
    # data and results under data/demo/ and results/demo/ so real runs are untouched.
    local port=${DEMO_PORT:-0} records=${DEMO_RECORDS:-60} log
    log=$(mktemp)
    "$VENV/bin/python" -m localapi --port "$port" --records "$records" >"$log" 2>&1 &
    local server=$!
    # expanded now: at exit the function's locals are gone (set -u would fail the run);
    # finish_run runs it too once the weekly steps own the EXIT trap
    CLEANUP="kill $server 2>/dev/null || true; rm -f '$log'"
    trap 'eval "$CLEANUP"' EXIT
    for _ in $(seq 100); do grep -q '^LOCALAPI ' "$log" && break; sleep 0.1; done
    grep -q '^LOCALAPI ' "$log" || die "the local API server did not start: $(cat "$log")"
    say "demo: local API server at $(sed -n 's/^LOCALAPI //p' "$log")"
    # shellcheck disable=SC1090
    source <(grep '^export ' "$log")
    # the demo never writes into the real DATA_DIR/RESULTS_DIR (DEMO_DATA_DIR and
    # DEMO_RESULTS_DIR move it elsewhere)
    export DATA_DIR=${DEMO_DATA_DIR:-data/demo} RESULTS_DIR=${DEMO_RESULTS_DIR:-results/demo} POLITENESS_SCALE=${POLITENESS_SCALE:-0}
    lock
    log_run
    weekly "$@"
    # absolute paths: the script runs from its own folder, not from the caller's
    local page
    page=$(abspath "$RESULTS_DIR/report.html")
    say "demo done: records in $(abspath "$DATA_DIR/metadata"), results in $(abspath "$RESULTS_DIR"), run summaries in $(abspath "$DATA_DIR/runs/$RUN_ID")"
    if [ -f "$page" ]; then
        say "demo review page: file://$page"
    else
        say "demo: no review page at $page (see the report step above)"
    fi
}

# Every step runs through run_step. Exit status 0: on to the next step. 3: the step
# finished and saved its work but found problems (a spider lost requests or its hits
# collapsed, a download failed): the next steps run, and so does the run's health check.
# Anything else: the step failed; nothing after it runs (it would work on a failed step's
# output). At the end, failed or not, the run's summary goes to
# $DATA_DIR/runs/$RUN_ID/summary.json (envision_spiders.runhealth), which says loudly what
# is wrong; the exit status is the failed step's, else 1 when the run is unhealthy.
STEPS_RUN=()
run_step() {
    local name=$1 rc=0
    shift
    "$@" || rc=$?
    STEPS_RUN+=(--step "$name=$rc")
    if [ -n "$STOPPED" ]; then
        say "ERROR: stopped by SIG$STOPPED during step $name (exit status $rc); the steps after it do not run"
        [ "$STOPPED" = INT ] && exit 130
        exit 143
    fi
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
        say "ERROR: step $name failed (exit status $rc); the steps after it do not run"
        exit "$rc"
    fi
}
finish_run() {
    local rc=$?
    trap - EXIT
    if [ "${#STEPS_RUN[@]}" -gt 0 ] && [ -x "$VENV/bin/python" ]; then
        if ! "$VENV/bin/python" -m envision_spiders.runhealth --data-dir "$DATA_DIR" --run-id "$RUN_ID" "${STEPS_RUN[@]}" ${STOPPED:+--stopped "$STOPPED"}; then
            [ "$rc" -ne 0 ] || rc=1
        fi
    fi
    eval "$CLEANUP"
    unlock
    exit "$rc"
}
weekly() {
    trap finish_run EXIT
    run_step scrape step_scrape "$@"
    run_step classify step_classify
    run_step download step_download
    run_step post step_post
    run_step recall step_recall
    run_step report step_report
}

case "$STEP" in
    setup) setup ;;
    test) setup; step_test "$@" ;;
    demo) setup; step_demo "$@" ;;
    scrape) lock; log_run; setup; trap finish_run EXIT; run_step scrape step_scrape "$@" ;;
    classify) lock; log_run; setup; trap finish_run EXIT; run_step classify step_classify "$@" ;;
    download) lock; log_run; setup; trap finish_run EXIT; run_step download step_download "$@" ;;
    post) lock; log_run; setup; trap finish_run EXIT; run_step post step_post "$@" ;;
    recall) lock; log_run; setup; trap finish_run EXIT; run_step recall step_recall "$@" ;;
    report) lock; log_run; setup; trap unlock EXIT; step_report "$@" ;;
    all) lock; log_run; setup; weekly "$@" ;;
    -h|--help|help) usage ;;
    *) die "unknown step '$STEP' (steps: all scrape classify download post recall report demo test setup; ./automation.sh help says what each does)" ;;
esac
