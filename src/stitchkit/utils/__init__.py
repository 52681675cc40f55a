"""Small shared helpers: atomic files, seeding, devices."""
