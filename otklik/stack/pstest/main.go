// A Pub/Sub emulator for machines without gcloud: Google's own in-memory fake (cloud.google.com/go/pubsub/pstest)
// served on a free loopback port, which it prints as host:port on the first line. Built by scripts/setup.sh with
// Debian's golang-go and golang-google-cloud-dev in GOPATH mode.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/pstest"
)

func main() {
	srv := pstest.NewServer()
	fmt.Println(srv.Addr)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	srv.Close()
}
