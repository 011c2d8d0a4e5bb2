%% bench_tree - building a supervision tree and shutting it down in order,
%% on the BEAM: the counterpart of bench/bench_tree.c.
%%
%% A top supervisor with S supervisor children (default 100), each with W
%% workers (default 100): 1 + S + S*W processes (10,101), all supervisors of
%% the supervisor behaviour (this module's init/1), all one_for_one, all
%% shutdowns the defaults (5,000 ms for a worker, infinity for a
%% supervisor). The workers are special processes started with
%% proc_lib:start_link and reporting with proc_lib:init_ack, as krill's
%% workers report their start, so every start is synchronous in both.
%%
%% build_secs runs from supervisor:start_link until it returns with the
%% whole tree up; the process count must then have grown by exactly
%% 1 + S + S*W (checked: procs). shutdown_secs runs from the exit signal
%% (shutdown) the root sends the top, as its parent, until the BEAM counts
%% them all gone. Workers wait in a receive and do not trap exits.
-module(bench_tree).
-behaviour(supervisor).
-export([run/1, init/1, start_worker/0, worker/0]).

run(Args) ->
    Spec = [{"--sups", sups, 100}, {"--workers", workers, 100}],
    case krbench:opts("tree", Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{sups := S, workers := W, schedulers := Scheds}} ->
            case erlang:system_info(process_limit) of
                Limit when Limit < 1 + S + S * W + 1024 ->
                    krbench:note("krbench tree: the process limit is ~b; start erl with +P ~b~n",
                                 [Limit, 1 + S + S * W + 1024]),
                    2;
                _ ->
                    krbench:run_root("tree", fun() -> root(S, W, Scheds) end)
            end
    end.

init({top, S, W}) ->
    {ok, {#{strategy => one_for_one},
          [#{id => {group, I}, start => {supervisor, start_link, [?MODULE, {group, W}]},
             type => supervisor} || I <- lists:seq(1, S)]}};
init({group, W}) ->
    {ok, {#{strategy => one_for_one},
          [#{id => {worker, I}, start => {?MODULE, start_worker, []}} || I <- lists:seq(1, W)]}}.

start_worker() ->
    proc_lib:start_link(?MODULE, worker, []).

worker() ->
    proc_lib:init_ack({ok, self()}),
    loop().

loop() ->
    receive _ -> loop() end.

root(S, W, Scheds) ->
    process_flag(trap_exit, true), % the top is linked to us
    Base = erlang:system_info(process_count),
    Want = 1 + S + S * W,
    krbench:note("tree: ~b supervisors of ~b workers under one: ~b processes~n", [S, W, Want]),
    T0 = krbench:now_ns(),
    {ok, Top} = supervisor:start_link(?MODULE, {top, S, W}),
    T1 = krbench:now_ns(),
    Procs = erlang:system_info(process_count) - Base,
    krbench:note("tree: built in ~s s; shutting it down~n",
                 [krbench:decimals(3, (T1 - T0) / 1.0e9)]),
    T2 = krbench:now_ns(),
    exit(Top, shutdown),
    wait_top(Top, Base),
    case krbench:wait_gone("tree", Base, "after the top ended") of
        error -> 1;
        ok when Procs =/= Want ->
            krbench:note("krbench tree: ~b processes alive in the tree, expected ~b~n",
                         [Procs, Want]),
            1;
        ok ->
            T3 = krbench:now_ns(),
            krbench:result("tree", [{schedulers, Scheds}, {sups, S}, {workers, W}, {procs, Procs},
                                    {build_secs, {float, 4, (T1 - T0) / 1.0e9}},
                                    {shutdown_secs, {float, 4, (T3 - T2) / 1.0e9}}]),
            io:format("tree: ~b processes started in ~s s (~s us each), shut down in ~s s~n",
                      [Procs, krbench:decimals(3, (T1 - T0) / 1.0e9),
                       krbench:decimals(2, (T1 - T0) / 1.0e3 / Procs),
                       krbench:decimals(3, (T3 - T2) / 1.0e9)]),
            0
    end.

wait_top(Top, Base) ->
    receive
        {'EXIT', Top, _} -> ok
    after 5000 ->
            krbench:note("tree: ~b processes still alive~n",
                         [erlang:system_info(process_count) - Base]),
            wait_top(Top, Base)
    end.
