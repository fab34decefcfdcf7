package console_test

import (
	"fmt"

	"github.com/tenantmcp/tenantmcp/console"
)

// New reports every missing or wrong option at once.
func ExampleNew() {
	_, err := console.New(console.Options{
		Issuer:      "https://login.example.com",
		RedirectURL: "http://mcp.example.com/console/callback",
	})
	fmt.Println(err)
	// Output:
	// console: Service is required
	// console: Authenticator is required
	// console: ClientID is required (the console's client at the identity provider)
	// console: RedirectURL "http://mcp.example.com/console/callback" must be https (http only on a loopback host)
}
