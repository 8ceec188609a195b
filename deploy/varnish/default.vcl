vcl 4.1;

# Varnish in front of Surge: a CDN-style cache for the anonymous pages and
# public catalog API that Surge marks cacheable, purged by surrogate key the
# moment an admin changes what they show.
#
# What Surge tells a shared cache (see docs/operations.md, "Running behind
# Varnish or another CDN"):
#   Surrogate-Key: product:12 category:3 home   the tags of what a page shows
#   Surrogate-Control: max-age=60, stale-while-revalidate=600
# Only responses carrying both are stored; everything else passes through.
# Surge sends the same tags it purges from its own page cache to
# --cdn-purge-url:
#   PURGE /  with Surrogate-Key: <tags>   removes every object with any tag
#   BAN /                                 removes everything (a full purge)
#
# Tags are indexed with the xkey vmod (Debian: varnish-modules), so a purge
# finds its objects through a hash and costs the same with 10 or 10 million
# objects cached; a ban would be tested against every object instead.
#
# Requires Varnish 7.1+ with varnish-modules 0.20+ (Debian 12: apt-get
# install varnish varnish-modules). Check with: varnishd -C -f default.vcl

import std;
import xkey;

# The origin: backend.vcl next to this file names it (a Surge listener or
# the load balancer in front of several).
include "./backend.vcl";

# Who may purge: the Surge replicas. Narrow this to their addresses; a purge
# costs the shop a refill, so it must not be open to the internet.
acl purgers {
	"127.0.0.1";
	"::1";
	"10.0.0.0"/8;
	"172.16.0.0"/12;
	"192.168.0.0"/16;
}

sub vcl_recv {
	if (req.method == "PURGE") {
		if (client.ip !~ purgers) {
			return (synth(403, "Purging not allowed from " + client.ip));
		}
		if (!req.http.Surrogate-Key) {
			return (synth(400, "PURGE needs a Surrogate-Key header naming the tags"));
		}
		# A hard purge: the next request for the page is a miss that fetches
		# the change, rather than a stale copy served while it refreshes.
		set req.http.X-Purged = xkey.purge(req.http.Surrogate-Key);
		return (synth(200, "Purged " + req.http.X-Purged + " objects"));
	}
	if (req.method == "BAN") {
		if (client.ip !~ purgers) {
			return (synth(403, "Banning not allowed from " + client.ip));
		}
		# Only obj.* in the expression: the ban lurker can apply it in the
		# background instead of every lookup testing it.
		ban("obj.status != 0");
		return (synth(200, "Banned everything"));
	}

	# Only reads are cached; a form post, an API write or a WebSocket goes
	# straight to Surge.
	if (req.method != "GET" && req.method != "HEAD") {
		return (pass);
	}
	# The admin API, and anything else that authenticates per request.
	if (req.http.Authorization) {
		return (pass);
	}
	# Personal pages and the shopper API are never cached, even for a
	# visitor without cookies: Surge answers them with no-store anyway, and
	# a lookup would only cost a hit-for-miss object per URL.
	if (req.url ~ "^/(cart|checkout|orders|account|queue)([/?]|$)" ||
	    req.url ~ "^/api/v1/(me|cart|checkout|orders|sessions|customers|admin|payments)([/?]|$)" ||
	    req.url ~ "^/drops/[^/]+/queue" || req.url ~ "^/api/v1/drops/[^/]+/queue") {
		return (pass);
	}
	# A visitor with any Surge cookie (surge_session, the waiting-room
	# surge_visitor and surge_wa_* access tokens, the surge_lsn
	# read-your-writes marker) may see personal state, or must see their
	# own write: straight to Surge.
	if (req.http.Cookie ~ "(^|;)\s*surge_") {
		return (pass);
	}
	# Other cookies (analytics and the like) do not change Surge's pages;
	# dropping them keeps them from splitting or bypassing the cache.
	unset req.http.Cookie;
	# Parameter order does not change a page: one object per set of values.
	set req.url = std.querysort(req.url);
	return (hash);
}

sub vcl_backend_response {
	# Never store a response that sets a cookie, or that Surge marked
	# private; a hit-for-miss object remembers that for a while, without
	# stopping a later cacheable answer from being stored.
	if (beresp.http.Set-Cookie || beresp.http.Cache-Control ~ "(?i)(private|no-store|no-cache)") {
		set beresp.uncacheable = true;
		set beresp.ttl = 120s;
		return (deliver);
	}
	# Embedded assets (/static/app.<hash>.css) are public and versioned:
	# their own Cache-Control, which Varnish has already applied, is right.
	if (bereq.url ~ "^/static/" && beresp.http.Cache-Control ~ "(?i)public") {
		return (deliver);
	}
	# Everything else is stored only when Surge tagged it and said for how
	# long: that is Surge's word that the page is the same for everyone.
	if (!beresp.http.Surrogate-Key || beresp.http.Surrogate-Control !~ "(^|[ ,])max-age=[0-9]+") {
		set beresp.uncacheable = true;
		set beresp.ttl = 120s;
		return (deliver);
	}
	# Surrogate-Control is meant for this cache, Cache-Control (s-maxage)
	# for any other; the time the page already spent in Surge's own cache
	# (Age) counts against it.
	set beresp.ttl = std.duration(regsub(beresp.http.Surrogate-Control, "^(.*[ ,])?max-age=([0-9]+).*$", "\2") + "s", 0s) - beresp.age;
	# Stale-while-revalidate: after the TTL, a copy is served while one
	# background fetch refreshes it.
	if (beresp.http.Surrogate-Control ~ "(^|[ ,])stale-while-revalidate=[0-9]+") {
		set beresp.grace = std.duration(regsub(beresp.http.Surrogate-Control, "^(.*[ ,])?stale-while-revalidate=([0-9]+).*$", "\2") + "s", 0s);
	} else {
		set beresp.grace = 0s;
	}
	# xkey indexes the object under each tag.
	set beresp.http.xkey = beresp.http.Surrogate-Key;
	unset beresp.http.Surrogate-Control;
	return (deliver);
}

sub vcl_deliver {
	# The tags and CDN directives are for this cache, not for browsers.
	unset resp.http.xkey;
	unset resp.http.Surrogate-Key;
	unset resp.http.Surrogate-Control;
	if (obj.uncacheable) {
		set resp.http.X-CDN = "PASS";
	} elsif (obj.hits > 0) {
		set resp.http.X-CDN = "HIT";
	} else {
		set resp.http.X-CDN = "MISS";
	}
}

sub vcl_synth {
	# Purge and ban answers, and errors: never cached, never with a body
	# that echoes a request.
	set resp.http.Cache-Control = "no-store";
	set resp.http.Content-Type = "text/plain; charset=utf-8";
	set resp.body = resp.reason + {"
"};
	return (deliver);
}
