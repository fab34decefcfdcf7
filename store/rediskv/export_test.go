package rediskv

var EscapeGlob = escapeGlob
