%% bench_cpu - CPU-bound jobs as supervised processes, on the BEAM: the
%% counterpart of bench/bench_cpu.c.
%%
%% A job is a naive fib(W) (default fib(27)); the BEAM counts a reduction
%% per call, so it needs no check of its own. The coordinator starts a
%% simple_one_for_one supervisor (this module's init/1) whose template is a
%% transient worker, a special process started with proc_lib:start_link;
%% starts N workers under it (supervisor:start_child, each a synchronous
%% start), sends each its job (W) and collects the N results, checking every
%% one. secs runs from the supervisor's start to the last result.
%%
%% One scheduler against all, in one invocation: the BEAM's schedulers are
%% made at boot (+S), so the 1-scheduler runs take all but one offline
%% (erlang:system_flag(schedulers_online, 1)) where krbench starts its VM
%% anew. speedup = secs_1 / secs_n. plain_secs is the same N fib(W) in a
%% plain loop in one process, without supervisor or messages; overhead_pct
%% = (secs_1 / plain_secs - 1) * 100. The three runs are repeated --reps
%% times (default 3), interleaved, and each figure is the median of its
%% runs. --at-start: each worker starts its job as soon as it has started,
%% unasked, as with krbench cpu --at-start. (krbench's plain_n_secs, the
%% plain loops split over threads, has no counterpart here: there is no
%% running outside the VM.)
-module(bench_cpu).
-behaviour(supervisor).
-export([run/1, init/1, start_worker/2, worker/2]).

run(Args) ->
    Spec = [{"--jobs", jobs, 1000}, {"--work", work, 27}, {"--reps", reps, 3},
            {"--at-start", at_start, flag}],
    case krbench:opts("cpu", Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{jobs := N, work := W, reps := R, at_start := AtStart, schedulers := S}} ->
            krbench:run_root("cpu", fun() -> root(N, W, R, AtStart, S) end)
    end.

%% Arg: {Coordinator, the work if workers are to start it at once, or ask}.
init(Arg) ->
    {ok, {#{strategy => simple_one_for_one},
          [#{id => job, start => {?MODULE, start_worker, [Arg]}, restart => transient}]}}.

start_worker(Arg, I) ->
    proc_lib:start_link(?MODULE, worker, [Arg, I]).

worker({Coord, Work}, I) ->
    proc_lib:init_ack({ok, self()}),
    W = case Work of
            ask -> receive {job, J} -> J end;
            _ -> Work
        end,
    Coord ! {result, I, fib(W)}.

fib(N) when N < 2 -> N;
fib(N) -> fib(N - 1) + fib(N - 2).

root(N, W, Reps, AtStart, Scheds) ->
    process_flag(trap_exit, true), % the supervisor is linked to us
    krbench:note("cpu: ~b jobs of fib(~b), ~b times each way~n", [N, W, Reps]),
    Runs = [begin
                Plain = plain_run(N, W),
                S1 = vm_run(N, W, AtStart, 1),
                Sn = vm_run(N, W, AtStart, Scheds),
                {Plain, S1, Sn}
            end || _ <- lists:seq(1, Reps)],
    erlang:system_flag(schedulers_online, Scheds),
    P = median([X || {X, _, _} <- Runs]),
    A = median([X || {_, X, _} <- Runs]),
    B = median([X || {_, _, X} <- Runs]),
    krbench:result("cpu", [{schedulers, Scheds}, {jobs, N}, {work, W},
                           {secs_1, {float, 4, A}}, {secs_n, {float, 4, B}},
                           {speedup, {float, 3, A / B}}, {plain_secs, {float, 4, P}},
                           {overhead_pct, {float, 2, (A / P - 1) * 100}}, {reps, Reps}]),
    io:format("cpu: ~b supervised jobs of fib(~b): ~s s on 1 scheduler, ~s s on ~b: speedup ~s; "
              "a plain loop took ~s s, so the processes cost ~s% (medians of ~b)~n",
              [N, W, krbench:decimals(3, A), krbench:decimals(3, B), Scheds,
               krbench:decimals(2, A / B), krbench:decimals(3, P),
               krbench:decimals(1, (A / P - 1) * 100), Reps]),
    0.

median(L) ->
    S = lists:sort(L),
    K = length(S),
    case K rem 2 of
        1 -> lists:nth(K div 2 + 1, S);
        0 -> (lists:nth(K div 2, S) + lists:nth(K div 2 + 1, S)) / 2
    end.

%% The N jobs in a plain loop in this process: their time in seconds. The
%% answer goes into the process dictionary, to check the workers' against.
plain_run(N, W) ->
    T0 = krbench:now_ns(),
    Fib = plain_loop(N, W, 0),
    Secs = (krbench:now_ns() - T0) / 1.0e9,
    krbench:note("cpu: ~b jobs in a plain loop: ~s s~n", [N, krbench:decimals(3, Secs)]),
    put(expect, Fib),
    Secs.

plain_loop(0, _, Fib) -> Fib;
plain_loop(K, W, _) -> plain_loop(K - 1, W, fib(W)).

%% One run on S schedulers: its time in seconds (the benchmark crashes,
%% and says so, on a wrong result).
vm_run(N, W, AtStart, S) ->
    erlang:system_flag(schedulers_online, S),
    T0 = krbench:now_ns(),
    {ok, Sup} = supervisor:start_link(?MODULE, {self(), if AtStart -> W; true -> ask end}),
    Pids = [begin {ok, P} = supervisor:start_child(Sup, [I]), P end || I <- lists:seq(0, N - 1)],
    [P ! {job, W} || P <- Pids, not AtStart],
    collect(N, get(expect), #{}),
    Secs = (krbench:now_ns() - T0) / 1.0e9,
    exit(Sup, shutdown),
    receive {'EXIT', Sup, _} -> ok end,
    krbench:note("cpu: ~b jobs on ~b scheduler(s): ~s s~n", [N, S, krbench:decimals(3, Secs)]),
    Secs.

collect(0, _, _) -> ok;
collect(K, Expect, Seen) ->
    receive
        {result, I, Expect} when not is_map_key(I, Seen) ->
            collect(K - 1, Expect, Seen#{I => true});
        {result, I, Fib} ->
            error({wrong_or_repeated_result, I, Fib})
    after 10000 ->
            krbench:note("cpu: still ~b results to come~n", [K]),
            collect(K, Expect, Seen)
    end.
