package main

import (
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// secretFlags hold secrets as a whole; urlFlags hold URLs that may carry a
// password.
var (
	secretFlags = map[string]bool{"admin-token": true, "smtp-password": true, "waitroom-keys": true}
	urlFlags    = map[string]bool{"db-url": true, "db-replica-url": true, "redis-url": true, "nats-url": true}
)

// redactedCmdline is the command line cmd was given, for
// /debug/pprof/cmdline, rebuilt from the flags set on it: the command's
// path, then --name=value for each, with the value of every secret flag
// replaced and the passwords in URLs hidden. (The process's own arguments
// are not shown at all: they may hold a secret under any spelling.)
func redactedCmdline(cmd *cobra.Command) []string {
	out := strings.Fields(cmd.CommandPath())
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		out = append(out, "--"+f.Name+"="+redactValue(f.Name, flagValue(f)))
	})
	return out
}

// flagValue is a flag's value as it was given (a list without brackets).
func flagValue(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), ",")
	}
	return f.Value.String()
}

// redactValue hides what a flag's value must not show.
func redactValue(name, value string) string {
	switch {
	case secretFlags[name]:
		return "[redacted]"
	case !urlFlags[name]:
		return value
	}
	parts := strings.Split(value, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		switch {
		case err != nil:
			parts[i] = "[redacted]"
		case u.User != nil:
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
