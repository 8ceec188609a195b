package natsbus

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPublish measures a durable publish (stored and acknowledged).
func BenchmarkPublish(b *testing.B) {
	bus := mustOpen(b, b.TempDir())
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := bus.Publish(ctx, "surge.bench", fmt.Sprint(i), []byte("{}")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsume measures delivery and acknowledgement through a
// consumer with the given concurrency.
func BenchmarkConsume(b *testing.B) {
	for _, conc := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			bus := mustOpen(b, b.TempDir())
			for i := range b.N {
				mustPublish(b, bus, "surge.bench", fmt.Sprint(i), "{}")
			}
			done := make(chan struct{}, b.N)
			b.ResetTimer()
			stop := mustConsume(b, bus, Consumer{Name: "bench", Subject: "surge.bench", Concurrency: conc,
				Handler: func(ctx context.Context, m Message) error {
					done <- struct{}{}
					return nil
				}})
			for range b.N {
				<-done
			}
			b.StopTimer()
			stop()
		})
	}
}
