#!/usr/bin/env bash
# Hardware decoder check on an NVIDIA machine: nvh264enc (or x264enc) → punktfunksink →
# punktfunksrc → h264parse → nvh264dec, 300 frames at 1280x720, counting decoded frames.
# With GPU_BUNDLE=DIR it uses GStreamer libraries and plugins copied into DIR/{lib,plugins,bin}
# (for a machine without GStreamer installed); otherwise the system's GStreamer and
# GST_PLUGIN_PATH (default target/release).
set -u
if [ -n "${GPU_BUNDLE:-}" ]; then
    export LD_LIBRARY_PATH="$GPU_BUNDLE/lib:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
    export GST_PLUGIN_SYSTEM_PATH_1_0="$GPU_BUNDLE/plugins"
    export GST_PLUGIN_SCANNER="$GPU_BUNDLE/bin/gst-plugin-scanner"
    export GST_REGISTRY_1_0="$PWD/gpu-registry.bin"
    export PATH="$GPU_BUNDLE/bin:$PATH"
else
    export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$PWD/target/release}"
fi
nvidia-smi -L 2>&1 | head -2
gst-inspect-1.0 punktfunk 2>&1 | head -4
for e in nvh264dec nvh264enc x264enc; do
    if gst-inspect-1.0 "$e" >/dev/null 2>&1; then echo "have $e"; else echo "no $e"; fi
done
gst-inspect-1.0 nvh264dec >/dev/null 2>&1 || { gst-inspect-1.0 nvcodec 2>&1 | tail -5; exit 4; }
ENC="x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60"
gst-inspect-1.0 x264enc >/dev/null 2>&1 || ENC="nvh264enc zerolatency=true gop-size=60 ! h264parse config-interval=-1"
PORT=$((20000 + RANDOM % 20000))
OUT="${OUT:-.}"
gst-launch-1.0 -v -e punktfunksrc port=$PORT passphrase=gpu-check ! h264parse ! nvh264dec ! identity silent=false ! fakesink \
    > "$OUT/client.log" 2>&1 &
CLIENT=$!
# A manual check, not a test: give the client (CUDA start-up) time to be listening for the host,
# so the count is not reduced by frames sent before it joined.
sleep 3
gst-launch-1.0 -e videotestsrc num-buffers=300 is-live=true ! video/x-raw,format=I420,width=1280,height=720,framerate=60/1 \
    ! $ENC ! video/x-h264,stream-format=byte-stream,alignment=au ! punktfunksink port=$PORT passphrase=gpu-check \
    > "$OUT/host.log" 2>&1
echo "host exit $?"
wait $CLIENT
echo "client exit $?"
echo "decoded frames: $(grep -c 'identity0: last-message = chain' "$OUT/client.log")"; grep -m1 -o 'nvh264dec0.GstPad:src: caps = [^,]*, format=[^,]*' "$OUT/client.log"
grep -iE "error|warn" "$OUT/client.log" "$OUT/host.log" | head -10
