package capacity

import "fmt"

func fmtSscanImpl(s string, v *int) (int, error) { return fmt.Sscan(s, v) }
