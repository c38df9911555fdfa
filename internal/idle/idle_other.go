//go:build !linux

package idle

import "errors"

func lower() error { return errors.New("idle: no idle CPU class on this system") }

func raise() error { return nil }

func raiseThread(int) error { return nil }

func lowerThread(int) error { return errors.New("idle: no idle CPU class on this system") }

func threadID() int { return 0 }

func widen(bool) error { return nil }

func setBackgroundCPUs(int) {}
