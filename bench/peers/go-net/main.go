// SPDX-License-Identifier: MIT
// Peer servers for weft's network benchmarks, on Go's runtime with package
// net (not net/http: the same hand-rolled parsing as the other peers).
//
// Usage: weft-peer-go-net <echo|http> [-port N]
//
// echo (W9): writes back every byte it reads, per connection.
// http (W8): answers every request of a keep-alive HTTP/1.1 connection with a
// fixed 13-byte "Hello, World!" response. A request is everything up to
// "\r\n\r\n" (no bodies); all complete requests of one read are answered with
// one write (pipelining-safe); "Connection: close" closes after the answer.
//
// One goroutine per connection, GOMAXPROCS=2 (set here); Go sets TCP_NODELAY
// on every connection by default. Prints "listening on PORT" once it
// accepts, and runs until killed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
)

var response = []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!")

const maxHead = 64 * 1024

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wantsClose reports whether a request head has "Connection: close".
func wantsClose(head []byte) bool {
	lower := bytes.ToLower(head)
	for {
		i := bytes.Index(lower, []byte("\r\nconnection:"))
		if i < 0 {
			return false
		}
		lower = lower[i+13:]
		end := bytes.Index(lower, []byte("\r\n"))
		if end < 0 {
			end = len(lower)
		}
		if bytes.Contains(lower[:end], []byte("close")) {
			return true
		}
	}
}

func serveHTTP(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 0, 4096)
	out := make([]byte, 0, 4096)
	chunk := make([]byte, 16*1024)
	scanned := 0 // bytes of buf known to hold no complete "\r\n\r\n"
	for {
		n, err := c.Read(chunk)
		if n == 0 || err != nil {
			return
		}
		buf = append(buf, chunk[:n]...)
		start, close := 0, false
		for {
			from := scanned - 3
			if from < start {
				from = start
			}
			i := bytes.Index(buf[from:], []byte("\r\n\r\n"))
			if i < 0 {
				scanned = len(buf)
				break
			}
			end := from + i + 4
			close = wantsClose(buf[start:end])
			out = append(out, response...)
			start, scanned = end, end
			if close {
				break
			}
		}
		rest := copy(buf, buf[start:])
		buf = buf[:rest]
		scanned -= start
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		if close || len(buf) > maxHead {
			return
		}
	}
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "echo" && os.Args[1] != "http") {
		fmt.Fprintln(os.Stderr, "usage: weft-peer-go-net <echo|http> [-port N]")
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	port := fs.Int("port", 8080, "TCP port on 127.0.0.1 (0: any free one)")
	fs.Parse(os.Args[2:])
	runtime.GOMAXPROCS(2)

	ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "weft-peer-go-net: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %d\n", ln.Addr().(*net.TCPAddr).Port)
	serve := echo
	if mode == "http" {
		serve = serveHTTP
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "weft-peer-go-net: accept: %v\n", err)
			continue
		}
		go serve(c)
	}
}
