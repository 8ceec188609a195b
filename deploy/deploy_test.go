package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

// binDir holds the surge binary the flag checks build; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "surge-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// compose-go warns through logrus about every variable a test leaves
	// unset on purpose; the tests check the errors instead.
	logrus.SetLevel(logrus.ErrorLevel)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// errNoGo means the go command is not on PATH, so the flag checks skip.
var errNoGo = errors.New("the go command is not on PATH")

// surgeFlags builds cmd/surge from this checkout and reads the flags of the
// subcommands the deployment runs from their --help, so a SURGE_* variable
// that names no flag (a typo, a renamed flag) fails the tests. Surge itself
// would ignore such a variable silently.
var surgeFlags = sync.OnceValues(func() (map[string]map[string]bool, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil, errNoGo
	}
	bin := filepath.Join(binDir, "surge")
	if out, err := exec.Command(goCmd, "build", "-o", bin, "../cmd/surge").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ../cmd/surge: %v\n%s", err, out)
	}
	flags := map[string]map[string]bool{}
	for _, sub := range []string{"serve", "worker", "migrate"} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, sub, "--help")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("surge %s --help: %v\n%s", sub, err, stderr.String())
		}
		flags[sub] = parseHelpFlags(stdout.String())
		if len(flags[sub]) == 0 {
			return nil, fmt.Errorf("surge %s --help lists no flags:\n%s", sub, stdout.String())
		}
	}
	return flags, nil
})

var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)`)

// parseHelpFlags returns the long flag names in cobra's usage text.
func parseHelpFlags(help string) map[string]bool {
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(help, -1) {
		flags[m[1]] = true
	}
	return flags
}

// checkSurgeEnv reports every SURGE_* name among env that is not a flag of
// `surge sub`: SURGE_ plus the flag name in upper snake case.
func checkSurgeEnv(t *testing.T, where, sub string, env []string) {
	t.Helper()
	all, err := surgeFlags()
	if errors.Is(err, errNoGo) {
		t.Skip("cannot check SURGE_* names against the flags: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	flags, ok := all[sub]
	if !ok {
		t.Fatalf("%s: runs `surge %s`, which these tests do not know", where, sub)
	}
	for _, name := range env {
		rest, ok := strings.CutPrefix(name, "SURGE_")
		if !ok {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
		if !flags[flag] {
			t.Errorf("%s: %s sets no flag: `surge %s` has no --%s", where, name, sub, flag)
		}
	}
}

// surgeSubcommand is the subcommand a Surge container runs, given its
// command line (the image's default is serve).
func surgeSubcommand(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") && !strings.Contains(a, "/") {
			return a
		}
	}
	return "serve"
}

// checkPinned fails for an image reference without a digest or an explicit
// version tag: "latest" or no tag means a restart can silently change
// what runs.
func checkPinned(ref string) error {
	if strings.Contains(ref, "@sha256:") {
		return nil
	}
	name := ref
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		name = ref[i+1:]
	}
	_, tag, ok := strings.Cut(name, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("image %q has no tag or digest", ref)
	case tag == "latest":
		return fmt.Errorf("image %q uses the moving tag latest", ref)
	}
	return nil
}

// portOf returns the port of a host:port listen address.
func portOf(t *testing.T, what, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s %q: port: %v", what, addr, err)
	}
	return n
}
