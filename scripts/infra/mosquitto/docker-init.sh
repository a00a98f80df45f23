#!/bin/sh
# docker-compose only: write the Mosquitto password file from the device registry.
# Each enterprise id (top-level `- id:` entries) becomes an account; every account,
# and the platform account, gets $CEMS_MQTT_DEV_PASSWORD. Development use only.
set -eu
REGISTRY=/cems/registry.yaml
OUT=/mosquitto/auth/passwd
: "${CEMS_MQTT_DEV_PASSWORD:?set CEMS_MQTT_DEV_PASSWORD}"
tmp="$OUT.tmp"
: > "$tmp"
mosquitto_passwd -b "$tmp" cems-platform "$CEMS_MQTT_DEV_PASSWORD"
for id in $(sed -n 's/^- id: *\([a-z0-9-]*\).*/\1/p' "$REGISTRY"); do
  mosquitto_passwd -b "$tmp" "$id" "$CEMS_MQTT_DEV_PASSWORD"
done
chown mosquitto:mosquitto "$tmp" 2>/dev/null || true
chmod 0600 "$tmp"
mv "$tmp" "$OUT"
echo "mosquitto-init: $(wc -l < "$OUT") accounts written"
