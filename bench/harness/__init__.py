"""What the benchmarks share, so that none imports another.

- paths: where the benchmarks are and keep their work;
- cli: argument types, progress on stderr, giving up on a set-up that cannot work, the error that
  ends one run;
- loadgen: the Node load generator (bench/peers/load.mjs): finding Node, installing, running it;
- server: the server under test, started by the tests' own runner (tests/support/server.py);
- sampler: the server's peak memory and CPU time while a load runs;
- revision: another revision of Pulsewire (the release before) checked out and run beside this one.
"""
