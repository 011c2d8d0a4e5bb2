%% bench_restart - how fast a supervisor replaces a child that crashes, on
%% the BEAM: the counterpart of bench/bench_restart.c.
%%
%% A one_for_one supervisor (the supervisor behaviour, this module's init/1)
%% with one permanent worker and a restart intensity it never reaches (10^9
%% restarts within 1 s, OTP's shortest period). The worker is a special
%% process started with proc_lib:start_link, reporting with
%% proc_lib:init_ack, as krill's workers report their start; it sends the
%% root a hello, then waits; told to crash, it crashes (erlang:error, which
%% like kr_crash takes a stack trace). The root times each round, from the
%% order to crash to the new child's hello. N timed rounds follow N/10 (at
%% most 1,000) untimed ones; restarts_per_s is N over the timed rounds'
%% total time, and the percentiles come from krbench_hist.
%%
%% The logger's level is set to none, so the crash and supervisor reports
%% are not even made (krill's are made and dropped by a log hook): printing
%% them would measure the terminal.
%%
%% OTP's supervisor keeps the times of the restarts within the period in a
%% list and walks it at every restart, so with a one-second period each
%% restart costs more the more restarts there were in the last second.
-module(bench_restart).
-behaviour(supervisor).
-export([run/1, init/1, start_worker/1, worker/1]).

run(Args) ->
    case krbench:opts("restart", Args, [{"--restarts", restarts, 20000}]) of
        {error, Rc} -> Rc;
        {ok, #{restarts := N, schedulers := S}} ->
            krbench:run_root("restart", fun() -> root(N, min(N div 10, 1000), S) end)
    end.

init(Root) ->
    {ok, {#{strategy => one_for_one, intensity => 1000000000, period => 1},
          [#{id => crasher, start => {?MODULE, start_worker, [Root]}, restart => permanent}]}}.

start_worker(Root) ->
    proc_lib:start_link(?MODULE, worker, [Root]).

worker(Root) ->
    proc_lib:init_ack({ok, self()}),
    Root ! {hello, self()},
    receive crash -> erlang:error(told_to_crash) end.

root(N, Warmup, Scheds) ->
    logger:set_primary_config(level, none),
    process_flag(trap_exit, true), % the supervisor is linked to us
    {ok, Sup} = supervisor:start_link(?MODULE, self()),
    krbench:note("restart: ~b restarts (+~b warm-up)~n", [N, Warmup]),
    case rounds(hello(), Warmup, none) of
        {ok, W, none} ->
            T0 = krbench:now_ns(),
            case rounds(W, N, krbench_hist:new()) of
                {ok, _, H} ->
                    Secs = (krbench:now_ns() - T0) / 1.0e9,
                    exit(Sup, shutdown),
                    report(N, Secs, H, Scheds);
                error -> 1
            end;
        error -> 1
    end.

%% The pid of the next child to say hello, or error if none does in 5 s.
hello() ->
    receive
        {hello, Pid} -> Pid
    after 5000 ->
            krbench:note("krbench restart: no child said hello within 5 s~n", []),
            error
    end.

%% Crash the child W K times, recording each round into H (unless none).
rounds(W, K, H) ->
    rounds(W, K, H, K, krbench:now_ns()).

rounds(error, _, _, _, _) -> error;
rounds(W, 0, H, _, _) -> {ok, W, H};
rounds(W, K, H, Of, Note) ->
    T0 = krbench:now_ns(),
    W ! crash,
    case hello() of
        W ->
            krbench:note("krbench restart: the crashed child said hello again~n", []),
            error;
        W1 ->
            T1 = krbench:now_ns(),
            H1 = case H of none -> none; _ -> krbench_hist:record(H, T1 - T0) end,
            Note1 = if
                        T1 - Note > 1000000000 ->
                            krbench:note("restart: ~b/~b restarts~n", [Of - K, Of]),
                            T1;
                        true -> Note
                    end,
            rounds(W1, K - 1, H1, Of, Note1)
    end.

report(N, Secs, H, Scheds) ->
    P = fun(Pc) -> krbench_hist:percentile(H, Pc) end,
    Mean = krbench_hist:mean(H),
    krbench:result("restart", [{schedulers, Scheds}, {restarts, N},
                               {restarts_per_s, round(N / Secs)}, {mean_ns, round(Mean)},
                               {p50_ns, P(50)}, {p99_ns, P(99)}, {p999_ns, P(99.9)},
                               {max_ns, P(100)}]),
    io:format("restart: ~b restarts in ~s s: ~b per second; from the order to crash to the new "
              "child's hello: mean ~s us, p50 ~s us, p99 ~s us~n",
              [N, krbench:decimals(3, Secs), round(N / Secs), krbench:decimals(1, Mean / 1000),
               krbench:decimals(1, P(50) / 1000), krbench:decimals(1, P(99) / 1000)]),
    0.
