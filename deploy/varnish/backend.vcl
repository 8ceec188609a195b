# The origin Varnish fetches from: `surge serve` on this machine with its
# default --addr. Behind a load balancer (several replicas), name the load
# balancer instead; compose.yaml mounts backend-compose.vcl in place of this
# file. The host must resolve when the VCL is loaded.
backend surge {
	.host = "127.0.0.1";
	.port = "8080";
	.connect_timeout = 2s;
	# Surge answers every request before its deadline (10s at most for
	# checkout); a page render is bounded by the page cache's render timeout.
	.first_byte_timeout = 15s;
	.between_bytes_timeout = 10s;
}
