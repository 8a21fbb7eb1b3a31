//go:build !linux

package main

import (
	"errors"
	"net"
)

func listenVsock(string) (net.Listener, error) {
	return nil, errors.New("vsock listening needs Linux")
}
