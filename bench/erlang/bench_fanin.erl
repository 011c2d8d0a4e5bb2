%% bench_fanin - K senders flooding one receiver with M messages each, on
%% the BEAM: the counterpart of bench/bench_fanin.c.
%%
%% The senders are spawned first and wait for a go; each notes the time of
%% its first send (in an atomics array, as the C version writes an array),
%% then sends its M messages {Index, Seq} to the root, which receives them
%% all. msgs_per_s = K*M / (last receive - earliest first send). The receiver
%% checks that every message arrives exactly once and that each sender's
%% messages arrive in the order sent (an atomics array of expected sequence
%% numbers, one read and one write per message, as in C).
%%
%% Nothing slows the senders down: when they outrun the receiver its mailbox
%% grows, and the peak RSS shows it.
%%
%% The receiver sets message_queue_data to off_heap, what OTP's
%% documentation advises for a process that may get many messages: the
%% queue then stays out of its heap (a growing on-heap queue is copied by
%% every garbage collection), and OTP 25's parallel signal queues, which
%% let senders on different schedulers enqueue without contending for one
%% lock, only ever switch on for off_heap receivers. --on-heap keeps the
%% default instead.
-module(bench_fanin).
-export([run/1]).

run(Args) ->
    Spec = [{"--senders", senders, 100}, {"--msgs", msgs, 100000}, {"--on-heap", on_heap, flag}],
    case krbench:opts("fanin", Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{senders := K, msgs := M, on_heap := OnHeap, schedulers := S}} ->
            Mqd = if OnHeap -> on_heap; true -> off_heap end,
            krbench:run_root("fanin", fun() -> root(K, M, Mqd, S) end)
    end.

root(K, M, Mqd, Scheds) ->
    process_flag(message_queue_data, Mqd),
    Root = self(),
    TFirst = atomics:new(K, [{signed, true}]),
    Next = atomics:new(K, [{signed, false}]),
    Pids = [spawn(fun() -> sender(Root, I, M, TFirst) end) || I <- lists:seq(1, K)],
    krbench:note("fanin: ~b senders x ~b messages (receiver's message queue ~s)~n", [K, M, Mqd]),
    [P ! go || P <- Pids],
    Total = K * M,
    case recv(Total, Total, Next, krbench:now_ns()) of
        error -> 1;
        ok ->
            TEnd = krbench:now_ns(),
            T0 = lists:min([atomics:get(TFirst, I) || I <- lists:seq(1, K)]),
            Secs = (TEnd - T0) / 1.0e9,
            krbench:result("fanin", [{schedulers, Scheds}, {senders, K}, {msgs, M},
                                     {msgs_per_s, round(Total / Secs)}, {secs, {float, 4, Secs}},
                                     {mqd, Mqd}]),
            io:format("fanin: ~b messages from ~b senders in ~s s: ~s M messages per second "
                      "(peak RSS ~b MB)~n",
                      [Total, K, krbench:decimals(3, Secs), krbench:decimals(2, Total / Secs / 1.0e6),
                       krbench:hwm_kb() div 1024]),
            0
    end.

sender(Root, I, M, TFirst) ->
    receive go -> ok end,
    %% The root reads this after it has received all of this sender's
    %% messages, which were sent after this write.
    atomics:put(TFirst, I, krbench:now_ns()),
    send(Root, I, 0, M).

send(_, _, M, M) -> ok;
send(Root, I, S, M) ->
    Root ! {I, S},
    send(Root, I, S + 1, M).

%% No timeout in the receive: arming a timer on every wait would be measured
%% too. A hang is caught by --timeout.
recv(0, _, _, _) ->
    ok;
recv(Left, Total, Next, Note) ->
    receive
        {I, S} when is_integer(I) ->
            case atomics:get(Next, I) of
                S ->
                    atomics:put(Next, I, S + 1),
                    Got = Total - Left + 1,
                    if
                        Got band 16#fffff =:= 0 ->
                            T = krbench:now_ns(),
                            if
                                T - Note > 1000000000 ->
                                    krbench:note("fanin: ~b/~b messages~n", [Got, Total]),
                                    recv(Left - 1, Total, Next, T);
                                true ->
                                    recv(Left - 1, Total, Next, Note)
                            end;
                        true ->
                            recv(Left - 1, Total, Next, Note)
                    end;
                Due ->
                    krbench:note("krbench fanin: sender ~b: message ~b arrived where ~b was due~n",
                                 [I, S, Due]),
                    error
            end;
        Other ->
            krbench:note("krbench fanin: a stray message: ~p~n", [Other]),
            error
    end.
