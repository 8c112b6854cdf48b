package testserver

import "github.com/latchkey/latchkey/services/tenancy"

func tenancyInput(app string) tenancy.BootstrapInput {
	return tenancy.BootstrapInput{Org: "Org " + app, App: app, OperatorEmail: "ops+" + app + "@example.test"}
}
