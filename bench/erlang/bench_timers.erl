%% bench_timers - what timers cost, on the BEAM: the counterpart of
%% bench/bench_timers.c, with erlang:send_after/3 and erlang:cancel_timer/1.
%%
%%  1. Memory: a helper process starts N timers of an hour to itself
%%     (message {t, I}), keeping no reference, and reads VmRSS before and
%%     after: bytes_per_timer = its growth / N (erlmem_bytes_per_timer: the
%%     same from erlang:memory(total)). The helper then ends, and its timers
%%     are cancelled with it.
%%  2. Starts: the root starts N timers to itself, keeping the references in
%%     a list, all due at one moment D after the phase starts (each asks
%%     for D less the time gone, read every 1,024 starts): starts_per_s. D
%%     is 1 s + 3 times what phase 1's starts took, so that phases 2
%%     and 3 end before it.
%%  3. Cancels: it cancels every second one (each must still be pending):
%%     cancels_per_s.
%%  4. Fires: it receives the other N/2, checking each comes once:
%%     fires_per_s = N/2 / (the last one's arrival - D).
%%
%% The root's message queue is off_heap, as OTP advises for a process that
%% gets many messages (bench_fanin.erl says why).
-module(bench_timers).
-export([run/1]).

run(Args) ->
    case krbench:opts("timers", Args, [{"--timers", timers, 1000000}]) of
        {error, Rc} -> Rc;
        {ok, #{timers := N, schedulers := S}} ->
            krbench:run_root("timers", fun() -> root(N, S) end)
    end.

root(N, Scheds) ->
    process_flag(message_queue_data, off_heap),
    {Per, ErlPer, MemNs} = memory_phase(N),
    krbench:note("timers: ~b pending timers took ~b bytes each~n", [N, round(Per)]),
    DMs = 1000 + MemNs div 333333,
    T0 = krbench:now_ns(),
    Due = T0 + DMs * 1000000,
    Refs = start(0, N, Due, DMs, []),
    T1 = krbench:now_ns(),
    case cancel(Refs, N - 1) of
        {error, I} ->
            krbench:note("krbench timers: timer ~b was not pending when cancelled: "
                         "the starts took longer than D = ~b ms~n", [I, DMs]),
            1;
        ok ->
            T2 = krbench:now_ns(),
            Half = N div 2,
            Seen = atomics:new(N, []),
            if
                T2 >= Due ->
                    krbench:note("krbench timers: starting and cancelling took longer than D = ~b ms~n",
                                 [DMs]),
                    1;
                true ->
                    case recv(Half, Seen, N) of
                        error -> 1;
                        ok ->
                            T3 = krbench:now_ns(),
                            Starts = N / ((T1 - T0) / 1.0e9),
                            Cancels = (N - Half) / ((T2 - T1) / 1.0e9),
                            Fires = Half / ((T3 - Due) / 1.0e9),
                            krbench:result("timers", [{schedulers, Scheds}, {timers, N},
                                                      {starts_per_s, round(Starts)},
                                                      {cancels_per_s, round(Cancels)},
                                                      {fires_per_s, round(Fires)},
                                                      {bytes_per_timer, round(Per)},
                                                      {erlmem_bytes_per_timer, round(ErlPer)}]),
                            io:format("timers: ~b started in ~s s (~b per second), ~b cancelled in ~s s "
                                      "(~b per second), ~b fired and received in ~s s after their "
                                      "deadline (~b per second); ~b bytes each while pending~n",
                                      [N, krbench:decimals(3, (T1 - T0) / 1.0e9), round(Starts),
                                       N - Half, krbench:decimals(3, (T2 - T1) / 1.0e9), round(Cancels),
                                       Half, krbench:decimals(3, (T3 - Due) / 1.0e9), round(Fires),
                                       round(Per)]),
                            0
                    end
            end
    end.

%% Phase 1, in a helper that then ends: {bytes per timer by VmRSS, by
%% erlang:memory(total), how long its starts took in ns}.
memory_phase(N) ->
    Parent = self(),
    {Pid, Ref} = spawn_monitor(fun() ->
                                       erlang:garbage_collect(),
                                       R0 = krbench:rss_kb(),
                                       M0 = erlang:memory(total),
                                       T0 = krbench:now_ns(),
                                       start_unkept(0, N),
                                       T1 = krbench:now_ns(),
                                       R1 = krbench:rss_kb(),
                                       M1 = erlang:memory(total),
                                       Parent ! {mem, self(), (R1 - R0) * 1024 / N, (M1 - M0) / N, T1 - T0}
                               end),
    receive
        {mem, Pid, Per, ErlPer, Ns} ->
            receive {'DOWN', Ref, process, Pid, _} -> ok end,
            {Per, ErlPer, Ns}
    end.

start_unkept(N, N) -> ok;
start_unkept(I, N) ->
    erlang:send_after(3600000, self(), {t, I}),
    start_unkept(I + 1, N).

%% Phase 2: the references, the last first.
start(N, N, _, _, Acc) -> Acc;
start(I, N, Due, Ms0, Acc) ->
    Ms = case I band 1023 of
             0 -> max(0, (Due - krbench:now_ns()) div 1000000);
             _ -> Ms0
         end,
    R = erlang:send_after(Ms, self(), {t, I}),
    start(I + 1, N, Due, Ms, [R | Acc]).

%% Phase 3: every second one, from the list of phase 2 (I counts down).
cancel([], _) -> ok;
cancel([R | Rest], I) when I band 1 =:= 0 ->
    case erlang:cancel_timer(R) of
        false -> {error, I};
        _ -> cancel(Rest, I - 1)
    end;
cancel([_ | Rest], I) ->
    cancel(Rest, I - 1).

%% Phase 4.
recv(0, _, _) -> ok;
recv(K, Seen, N) ->
    receive
        {t, I} when I band 1 =:= 1, I < N ->
            case atomics:get(Seen, I + 1) of
                0 ->
                    atomics:put(Seen, I + 1, 1),
                    recv(K - 1, Seen, N);
                _ ->
                    krbench:note("krbench timers: timer ~b came twice~n", [I]),
                    error
            end;
        Other ->
            krbench:note("krbench timers: a wrong message: ~p~n", [Other]),
            error
    after 10000 ->
            krbench:note("krbench timers: ~b timers still to fire after 10 s~n", [K]),
            error
    end.
