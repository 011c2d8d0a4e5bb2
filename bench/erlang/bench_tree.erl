%% bench_tree - building a supervision tree and shutting it down in order,
%% on the BEAM: the counterpart of bench/bench_tree.c.
%%
%% A top supervisor with S supervisor children (default 100), each with W
%% workers (default 10): 1 + S + S*W processes (1,101), all supervisors of
%% the supervisor behaviour (this module's init/1), all one_for_one, all
%% shutdowns the defaults (5,000 ms for a worker, infinity for a
%% supervisor). The workers are special processes started with
%% proc_lib:start_link and reporting with proc_lib:init_ack, as krill's
%% workers report their start, so every start is synchronous in both.
%%
%% start_ms runs from supervisor:start_link until it returns with the
%% whole tree up; the process count must then have grown by exactly
%% 1 + S + S*W (checked: procs). shutdown_ms runs from the exit signal
%% (shutdown) the root sends the top, as its parent, until the BEAM counts
%% them all gone. Workers wait in a receive and do not trap exits. The tree
%% is built and shut down --rounds times (default 7): start_ms and
%% shutdown_ms are medians, start_ms_first the first round's.
-module(bench_tree).
-behaviour(supervisor).
-export([run/1, init/1, start_worker/0, worker/0]).

run(Args) ->
    Spec = [{"--sups", sups, 100}, {"--workers", workers, 10}, {"--rounds", rounds, 7}],
    case krbench:opts("tree", Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{sups := S, workers := W, rounds := R, schedulers := Scheds}} ->
            case erlang:system_info(process_limit) of
                Limit when Limit < 1 + S + S * W + 1024 ->
                    krbench:note("krbench tree: the process limit is ~b; start erl with +P ~b~n",
                                 [Limit, 1 + S + S * W + 1024]),
                    2;
                _ ->
                    krbench:run_root("tree", fun() -> root(S, W, R, Scheds) end)
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

root(S, W, R, Scheds) ->
    process_flag(trap_exit, true), % the top is linked to us
    Base = erlang:system_info(process_count),
    Want = 1 + S + S * W,
    krbench:note("tree: ~b supervisors of ~b workers under one: ~b processes~n", [S, W, Want]),
    rounds(S, W, R, 1, Base, Want, Scheds, []).

rounds(S, W, R, Round, Base, Want, Scheds, Times) when Round =< R ->
    T0 = krbench:now_ns(),
    {ok, Top} = supervisor:start_link(?MODULE, {top, S, W}),
    T1 = krbench:now_ns(),
    Procs = erlang:system_info(process_count) - Base,
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
            Start = (T1 - T0) / 1.0e6,
            Shutdown = (T3 - T2) / 1.0e6,
            krbench:note("tree: round ~b: built in ~s ms, shut down in ~s ms~n",
                         [Round, krbench:decimals(2, Start), krbench:decimals(2, Shutdown)]),
            rounds(S, W, R, Round + 1, Base, Want, Scheds, [{Start, Shutdown} | Times])
    end;
rounds(S, W, R, _, _, Want, Scheds, Times) ->
    [{First, _} | _] = lists:reverse(Times),
    StartMed = median([St || {St, _} <- Times]),
    ShutdownMed = median([Sh || {_, Sh} <- Times]),
    krbench:result("tree", [{schedulers, Scheds}, {sups, S}, {workers, W}, {procs, Want},
                            {rounds, R}, {start_ms, {float, 3, StartMed}},
                            {shutdown_ms, {float, 3, ShutdownMed}},
                            {start_ms_first, {float, 3, First}}]),
    io:format("tree: ~b processes started in ~s ms (~s us each), shut down in ~s ms "
              "(medians of ~b rounds; the first start: ~s ms)~n",
              [Want, krbench:decimals(2, StartMed), krbench:decimals(2, StartMed * 1.0e3 / Want),
               krbench:decimals(2, ShutdownMed), R, krbench:decimals(2, First)]),
    0.

median(L) ->
    Sorted = lists:sort(L),
    N = length(Sorted),
    case N rem 2 of
        1 -> lists:nth(N div 2 + 1, Sorted);
        0 -> (lists:nth(N div 2, Sorted) + lists:nth(N div 2 + 1, Sorted)) / 2
    end.

wait_top(Top, Base) ->
    receive
        {'EXIT', Top, _} -> ok
    after 5000 ->
            krbench:note("tree: ~b processes still alive~n",
                         [erlang:system_info(process_count) - Base]),
            wait_top(Top, Base)
    end.
