package admission

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestLimitListenerCapsOpenConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(inner, 2)
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two were open")
	case <-time.After(50 * time.Millisecond):
		// Nothing arrives: absence can only be observed by waiting.
	}
	first.Close()
	first.Close() // closing twice frees one slot, not two
	if c := <-accepted; c == nil {
		t.Fatal("the third connection was not accepted after one closed")
	}
	second.Close()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	for range accepted {
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if LimitListener(inner, 0) != inner {
		t.Fatal("LimitListener(ln, 0) wrapped ln")
	}
}
