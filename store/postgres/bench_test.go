package postgres

func benchCleanup() {}
