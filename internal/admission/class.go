package admission

import "fmt"

// Class is a request's priority. When the process is at its concurrency
// limit the lowest classes are shed first, and a share of the limit is held
// back so that only the higher classes can use it.
//
// The zero value is Background, the lowest: a route nobody classified is
// the first to go, never the last.
type Class int

// The classes, lowest first.
const (
	// Background is prefetch, analytics and anything a user is not
	// waiting on.
	Background Class = iota
	// Browse is catalog pages, product pages and search.
	Browse
	// High is cart and account.
	High
	// Critical is checkout and payment: the requests that earn money.
	Critical
)

// NumClasses is the number of classes; Class values run from 0 to
// NumClasses-1 and index per-class settings such as Config.Deadlines.
const NumClasses = 4

var classNames = [NumClasses]string{"background", "browse", "high", "critical"}

// String returns the lowercase name used in metrics labels and flags.
func (c Class) String() string {
	if c.valid() {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", int(c))
}

func (c Class) valid() bool { return c >= 0 && c < NumClasses }

// ParseClass is the inverse of String.
func ParseClass(s string) (Class, error) {
	for i, n := range classNames {
		if n == s {
			return Class(i), nil
		}
	}
	return 0, fmt.Errorf("admission: unknown class %q (want critical, high, browse or background)", s)
}
