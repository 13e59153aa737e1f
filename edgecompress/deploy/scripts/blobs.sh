# Device-side file helper without Python (the shell twin of device/blobs.py):
#   sh blobs.sh list DIR | free DIR | install TMP SHA256 FINAL ...
# install checks each TMP's sha256 ON the device (sha256sum, toybox or busybox), makes it
# executable (blobs may be programs, e.g. benchmark_model) and renames it to FINAL; a mismatch
# removes TMP and is printed as "bad ..." on stderr (exit 1).
sha() { (sha256sum "$1" || toybox sha256sum "$1" || busybox sha256sum "$1") 2>/dev/null | { read h _; echo "$h"; }; }
cmd="$1"; shift
case "$cmd" in
  list) mkdir -p "$1" && ls -1 "$1" ;;
  free) df -k "$1" 2>/dev/null | { read _; read _ _ _ avail _; [ -n "$avail" ] && echo $((avail * 1024)); } ;;
  install)
    rc=0
    while [ $# -ge 3 ]; do
      got=$(sha "$1")
      if [ -z "$got" ]; then
        rm -f "$1"; echo "bad $1: no sha256sum on the device (Android 8+ toybox has it; else install busybox)" >&2; rc=1
      elif [ "$got" != "$2" ]; then
        rm -f "$1"; echo "bad $1: sha256 $got, expected $2 (partial or corrupt; removed)" >&2; rc=1
      else
        chmod 755 "$1" && mv -f "$1" "$3" || rc=1
      fi
      shift 3
    done
    [ $rc = 0 ] && echo ok
    exit $rc ;;
  *) echo "usage: list DIR | free DIR | install TMP SHA256 FINAL ..." >&2; exit 2 ;;
esac
