// goverify checks a detached armored signature the way Elastic Agent and Fleet Server do:
// golang.org/x/crypto/openpgp, one armored key ring per key file, tried in order.
//
// Usage: goverify DATA SIGNATURE KEYFILE...
// Prints "ok PGP[i] <FINGERPRINT>" and exits 0 on the first key that verifies;
// prints one "fail PGP[i]: <error>" line per key and exits 1 otherwise.
package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/openpgp"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: goverify DATA SIGNATURE KEYFILE...")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	signature, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i, keyFile := range os.Args[3:] {
		keyBytes, err := os.ReadFile(keyFile)
		if err != nil {
			fmt.Printf("fail PGP[%d]: %v\n", i, err)
			continue
		}
		ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(keyBytes))
		if err != nil {
			fmt.Printf("fail PGP[%d]: read armored key ring: %v\n", i, err)
			continue
		}
		signer, err := openpgp.CheckArmoredDetachedSignature(
			ring, bytes.NewReader(data), bytes.NewReader(signature))
		if err != nil {
			fmt.Printf("fail PGP[%d]: %v\n", i, err)
			continue
		}
		fmt.Printf("ok PGP[%d] %s\n", i, strings.ToUpper(fmt.Sprintf("%x", signer.PrimaryKey.Fingerprint)))
		os.Exit(0)
	}
	os.Exit(1)
}
