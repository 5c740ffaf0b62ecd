"""Prime-number jobs on the shared worker pool: sieve (worker functions), primality (ISPRIME),
numbers (argument parsing) and jobs (the service the control protocol calls)."""
