# What a device without Python is: Android properties (when there) and uname, as key=value lines.
printf 'abi=%s\nrelease=%s\nsdk=%s\nmodel=%s\n' "$(getprop ro.product.cpu.abi 2>/dev/null)" \
  "$(getprop ro.build.version.release 2>/dev/null)" "$(getprop ro.build.version.sdk 2>/dev/null)" \
  "$(getprop ro.product.model 2>/dev/null)"
printf 'uname=%s\n' "$(uname -sm)"
