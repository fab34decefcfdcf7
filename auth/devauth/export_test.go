package devauth

// CheckRedirectURI is checkRedirectURI, for the fuzz test.
var CheckRedirectURI = checkRedirectURI
