# The native agent's benchmark: benchmark_model between an idle and a loaded battery window, then the
# phone's facts; sections start with MARK (parsed by deploy/native.py). Sent after battery.sh.
# Arguments: ROOT WORKDIR TAG SAMPLE(1|0) INTERVAL_S IDLE_S MARK BINARY [FLAG...]
R=$1; W=$2; TAG=$3; SAMPLE=$4; IV=$5; IDLE_S=$6; M=$7
shift 7
S=$W/.bat-$TAG; STOP=$W/.stop-$TAG; I=$W/.idle-$TAG
echo "${M}bench"
if [ "$SAMPLE" = 1 ]; then
  # idle window, then the run; samples taken after the binary exits are dropped on the host (END)
  ec_sample "$R" "$I" "$STOP" "$IV"
  sleep "$IDLE_S"; touch "$STOP"; wait $SP 2>/dev/null
  ec_sample "$R" "$S" "$STOP" "$IV"
  "$@" 2>&1; RC=$?
  read T1 _ < /proc/uptime
  touch "$STOP"; wait $SP 2>/dev/null
  echo "${M}idle"; cat "$I"; echo "${M}samples"; cat "$S"; echo "END $T1"
  rm -f "$S" "$I" "$STOP"
else
  "$@" 2>&1; RC=$?
fi
echo "${M}after"
ec_probe "$R"
echo "${M}rc=$RC"
