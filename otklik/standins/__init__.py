"""Real HTTP servers on loopback standing in for the outside world: VK's API, a department's webhook, a mail
server. They answer in the documented shapes of the real services, so the production client code is what the
tests and the local stack exercise."""
