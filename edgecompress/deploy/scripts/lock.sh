# The device lock without Python: sh lock.sh PATH OWNER TIMEOUT_S
# A lock folder PATH.d holds the holder's pid and owner text. Speaks the runner's `lock` protocol on
# stdout ("waiting OWNER", "recovered OWNER", "timeout OWNER", "locked") and holds the lock until its
# stdin closes. A holder whose pid is gone is recovered.
L="$1.d"; OWNER="$2"; T="$3"; mkdir -p "${L%/*}"; start=$(date +%s); said=
while ! mkdir "$L" 2>/dev/null; do
  pid=$(cat "$L/pid" 2>/dev/null); who=$(cat "$L/owner" 2>/dev/null)
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$L"; echo "recovered $who"; continue; fi
  if [ $(( $(date +%s) - start )) -ge "$T" ]; then echo "timeout $who"; exit 1; fi
  [ -z "$said" ] && echo "waiting $who" && said=1
  sleep 1
done
echo $$ > "$L/pid"; printf '%s\n' "$OWNER" > "$L/owner"; echo locked
cat > /dev/null
rm -rf "$L"
