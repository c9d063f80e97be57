//go:build !govirtiofs_api

package main

import "fmt"

func demo(tag string) int {
	fmt.Printf("govirtiofs demo: share tag %q\n", tag)
	listPCI()
	fmt.Println("govirtiofs: driver not yet available")
	return 0
}
