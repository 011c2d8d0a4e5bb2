%% bench_spawn - how fast processes are made, and what a waiting one costs,
%% on the BEAM: the counterpart of bench/bench_spawn.c.
%%
%% Default: the root spawns N processes that each wait in a receive. The
%% spawn phase runs from the first spawn until every process has started
%% (each bumps a shared counter just before its receive); then the run queues
%% must be empty but for the root (statistics(total_active_tasks) = 1), that
%% is every process parked in its receive, before the resident set is read.
%%
%%     bytes_per_proc = (VmRSS with all N parked - VmRSS before the first spawn) / N
%%
%% is measured as krbench measures it: the whole cost of a live, idle process
%% as the operating system sees it. erlmem_bytes_per_proc is the same
%% difference taken from erlang:memory(total), what the BEAM's allocators
%% hand out, for comparison. The root keeps no list of the pids while it
%% measures (a million-element list would be 16 MB of its own heap in the
%% figure); it takes them from erlang:processes() afterwards, less those that
%% existed before, sends each one message, and the run ends when the BEAM
%% counts them all gone.
%%
%% --hibernate: the same, but each waits in erlang:hibernate/3 (its heap
%% and stack shrunk to what the call needs) and takes its message when woken.
%%
%% --short: N processes that start, send one message to the root and exit;
%% spawn_per_s covers everything, from the first spawn until all N messages
%% are in and the BEAM counts all N processes gone. The root sets
%% message_queue_data to off_heap, as OTP's documentation advises for a
%% process that may get many messages: with the default (on_heap), every
%% garbage collection of the root, which allocates as it spawns, copies the
%% messages queued so far, and the run turns quadratic (1,000,000 took 76 s
%% on one scheduler, 113 s on two, against about 1 s). --on-heap keeps the
%% default, to see that.
%%
%% Needs +P above N.
-module(bench_spawn).
-export([run/1, woken/1]).

run(Args) ->
    Spec = [{"--procs", procs, 1000000}, {"--short", short, flag}, {"--on-heap", on_heap, flag},
            {"--hibernate", hibernate, flag}],
    case krbench:opts("spawn", Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{short := false, on_heap := true}} ->
            krbench:note("krbench spawn: --on-heap goes with --short~n", []),
            2;
        {ok, #{short := true, hibernate := true}} ->
            krbench:note("krbench spawn: --short or --hibernate, not both~n", []),
            2;
        {ok, #{procs := N, short := Short, on_heap := OnHeap, hibernate := Hib, schedulers := S}} ->
            case erlang:system_info(process_limit) of
                Limit when Limit < N + 1024 ->
                    krbench:note("krbench spawn: the process limit is ~b; start erl with +P ~b~n",
                                 [Limit, max(N + 1024, 2000000)]),
                    2;
                _ ->
                    krbench:note("spawn: ~b processes~s~n", [N, if Short -> ", short-lived"; true -> "" end]),
                    Mqd = if OnHeap -> on_heap; true -> off_heap end,
                    Run = if Short -> fun() -> run_short(N, Mqd, S) end;
                             true -> fun() -> run_waiting(N, S, Hib) end
                          end,
                    krbench:run_root("spawn", Run)
            end
    end.

spawn_all(0, _) -> ok;
spawn_all(N, Fun) ->
    spawn(Fun),
    spawn_all(N - 1, Fun).

run_short(N, Mqd, Scheds) ->
    process_flag(message_queue_data, Mqd),
    Root = self(),
    Base = erlang:system_info(process_count),
    T0 = krbench:now_ns(),
    spawn_all(N, fun() -> Root ! hi end),
    TSpawned = krbench:now_ns(),
    receive_hi(0, N),
    TMsgs = krbench:now_ns(),
    case krbench:wait_gone("spawn", Base, "after sending") of
        error -> 1;
        ok ->
            Secs = (krbench:now_ns() - T0) / 1.0e9,
            krbench:result("spawn", [{schedulers, Scheds}, {mode, short}, {procs, N},
                                     {spawn_per_s, round(N / Secs)}, {secs, {float, 4, Secs}},
                                     {mqd, Mqd}]),
            io:format("spawn --short: ~b processes spawned, run and gone in ~s s: ~b per second "
                      "(spawn calls done at ~s s, all messages in at ~s s)~n",
                      [N, krbench:decimals(3, Secs), round(N / Secs),
                       krbench:decimals(3, (TSpawned - T0) / 1.0e9), krbench:decimals(3, (TMsgs - T0) / 1.0e9)]),
            0
    end.

receive_hi(N, N) -> ok;
receive_hi(Got, N) ->
    receive
        hi -> receive_hi(Got + 1, N)
    after 2000 ->
            krbench:note("spawn: ~b/~b messages in~n", [Got, N]),
            receive_hi(Got, N)
    end.

%% Counter 1: started; counter 2: released.
waiter(C) ->
    counters:add(C, 1, 1),
    receive go -> counters:add(C, 2, 1) end.

hibernator(C) ->
    counters:add(C, 1, 1),
    erlang:hibernate(?MODULE, woken, [C]).

woken(C) ->
    receive go -> counters:add(C, 2, 1) end.

run_waiting(N, Scheds, Hib) ->
    C = counters:new(2, [write_concurrency]),
    Base = erlang:system_info(process_count),
    Before = maps:from_keys(erlang:processes(), []),
    erlang:garbage_collect(),
    Rss0 = krbench:rss_kb(),
    Mem0 = erlang:memory(total),
    T0 = krbench:now_ns(),
    spawn_all(N, if Hib -> fun() -> hibernator(C) end; true -> fun() -> waiter(C) end end),
    TSpawned = krbench:now_ns(),
    krbench:note("spawn: ~b spawn calls in ~s s~n", [N, krbench:decimals(3, (TSpawned - T0) / 1.0e9)]),
    case wait_started(C, N, TSpawned, TSpawned, 0) of
        error -> 1;
        TStarted ->
            case wait_parked(krbench:now_ns()) of
                error -> 1;
                ok ->
                    Rss1 = krbench:rss_kb(),
                    Mem1 = erlang:memory(total),
                    Secs = (TStarted - T0) / 1.0e9,
                    krbench:note("spawn: all ~b started and parked; releasing them~n", [N]),
                    Pids = [P || P <- erlang:processes(), not maps:is_key(P, Before)],
                    T1 = krbench:now_ns(),
                    [P ! go || P <- Pids],
                    case krbench:wait_gone("spawn", Base, "after release") of
                        error -> 1;
                        ok ->
                            TGone = krbench:now_ns(),
                            case counters:get(C, 2) of
                                N ->
                                    Per = (Rss1 - Rss0) * 1024 / N,
                                    MemPer = (Mem1 - Mem0) / N,
                                    RelSecs = (TGone - T1) / 1.0e9,
                                    krbench:result("spawn",
                                                   [{schedulers, Scheds},
                                                    {mode, if Hib -> hibernate; true -> wait end},
                                                    {procs, N},
                                                    {spawn_per_s, round(N / Secs)},
                                                    {bytes_per_proc, round(Per)},
                                                    {release_per_s, round(N / RelSecs)},
                                                    {secs, {float, 4, Secs}},
                                                    {erlmem_bytes_per_proc, round(MemPer)}]),
                                    io:format("spawn: ~b processes started and waiting in ~s s (~b per second; "
                                              "spawn calls alone ~b per second); ~b bytes resident each "
                                              "(~b by erlang:memory); released and gone in ~s s~n",
                                              [N, krbench:decimals(3, Secs), round(N / Secs),
                                               round(N / ((TSpawned - T0) / 1.0e9)), round(Per), round(MemPer),
                                               krbench:decimals(3, RelSecs)]),
                                    0;
                                Released ->
                                    krbench:note("krbench spawn: ~b of ~b processes got their message~n",
                                                 [Released, N]),
                                    1
                            end
                    end
            end
    end.

%% The time all N had started, or error after 60 s.
wait_started(C, N, TSpawned, Note, Spins) ->
    T = krbench:now_ns(),
    case counters:get(C, 1) of
        N -> T;
        Started when T - TSpawned > 60000000000 ->
            krbench:note("krbench spawn: only ~b of ~b processes started within 60 s~n", [Started, N]),
            error;
        Started ->
            Note1 = if
                        T - Note > 1000000000 ->
                            krbench:note("spawn: ~b/~b started~n", [Started, N]),
                            T;
                        true -> Note
                    end,
            krbench:yield_or_sleep(Spins),
            wait_started(C, N, TSpawned, Note1, Spins + 1)
    end.

%% Nothing runnable but the root itself: every waiter is parked in its
%% receive. ok, or error if that does not happen within 10 s.
wait_parked(T0) ->
    case erlang:statistics(total_active_tasks) of
        1 -> ok;
        Active ->
            case krbench:now_ns() - T0 > 10000000000 of
                true ->
                    krbench:note("krbench spawn: ~b processes still runnable after 10 s~n", [Active - 1]),
                    error;
                false ->
                    receive after 1 -> ok end,
                    wait_parked(T0)
            end
    end.
