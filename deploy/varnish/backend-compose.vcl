# The origin in deploy/compose.yaml: HAProxy, which spreads requests over
# the API replicas. Compose mounts this file as backend.vcl; Docker's DNS
# must resolve the name when varnishd loads the VCL, so the varnish service
# starts after haproxy.
backend surge {
	.host = "haproxy";
	.port = "8080";
	.connect_timeout = 2s;
	.first_byte_timeout = 15s;
	.between_bytes_timeout = 10s;
}
