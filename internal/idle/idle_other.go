//go:build !linux

package idle

import "errors"

func lower() error { return errors.New("idle: no idle CPU class on this system") }

func raise() error { return nil }

func widen(bool) error { return nil }

func setBackgroundCPUs(int) {}
