# Sourced by recipes/*/run.sh after they set their defaults (data, exp, stop_stage): parses the
# options every recipe takes and defines run N (true when stage N is to be run).
stage=${stage:-0}; jobs=
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2;; --exp) exp=$2; shift 2;; --jobs) jobs="--jobs $2"; shift 2;;
    --stage) stage=$2; shift 2;; --stop-stage) stop_stage=$2; shift 2;;
    -h|--help) sed -n '2,/^set /p' "$0" | sed 's/^# \{0,1\}//;/^set /d'; exit 0;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2;;
  esac
done
run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
