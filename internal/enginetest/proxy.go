package enginetest

import (
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections to an engine and fails them on demand,
// as the engine restarting or a network partition would. Point the code
// under test at URL instead of the engine's own URL.
type Proxy struct {
	// URL is the engine's URL with the proxy's address as its host.
	URL    string
	target string
	ln     net.Listener

	mu     sync.Mutex
	conns  []*link
	refuse bool
	// held, while not nil, is closed by Release; until then bytes from
	// clients wait in the proxy.
	held chan struct{}
}

// link is one proxied connection. Once dead it throws away whatever it
// reads, like a connection whose peer vanished without a word.
type link struct {
	client, server net.Conn
	dead           atomic.Bool
}

func (l *link) close() {
	l.client.Close()
	l.server.Close()
}

// NewProxy starts a proxy on 127.0.0.1 in front of the host of engineURL;
// t.Cleanup stops it.
func NewProxy(t testing.TB, engineURL string) *Proxy {
	t.Helper()
	u, err := url.Parse(engineURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: u.Host, ln: ln}
	u.Host = ln.Addr().String()
	p.URL = u.String()
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Release()
		p.Cut()
	})
	return p
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		r, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: r}
		p.mu.Lock()
		p.conns = append(p.conns, l)
		p.mu.Unlock()
		go l.pipe(c, r, nil)
		go l.pipe(r, c, p.gate)
	}
}

// pipe copies src to dst; gate, if not nil, is waited on before each
// write.
func (l *link) pipe(dst, src net.Conn, gate func()) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && gate != nil {
			gate()
		}
		if n > 0 && !l.dead.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				l.close()
				return
			}
		}
		if err != nil {
			l.close()
			return
		}
	}
}

// Cut closes every connection and refuses new ones until Heal, as the
// engine going down would.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = true
	for _, l := range p.conns {
		l.close()
	}
	p.conns = nil
}

// Freeze makes every open connection silent for good, without closing
// it, and refuses new ones until Heal: a partition, where requests time
// out rather than fail.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = true
	for _, l := range p.conns {
		l.dead.Store(true)
	}
}

// Heal accepts new connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = false
}

// Hold keeps what clients send from reaching the engine until Release,
// on open connections and new ones; what the engine sends still flows.
// It shows what a server does without waiting for its client.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
}

// Release delivers what Hold kept back, in order, and lets clients' bytes
// through again.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
}

func (p *Proxy) gate() {
	p.mu.Lock()
	held := p.held
	p.mu.Unlock()
	if held != nil {
		<-held
	}
}
