%% chat - the chat server of examples/chat/ on the BEAM, with gen_tcp and
%% OTP supervisors, so that build/chat_load can run the same load against
%% both. Same protocol, same tree, same limits:
%%
%%     top 'chat' (one_for_one, 3 restarts in 60 s)
%%      +- rooms 'chat:rooms' (one_for_one, 10 in 10 s): a supervisor per room
%%      |   +- room supervisor 'rsup:NAME' (one_for_one, 3 in 5 s)
%%      |       +- the room 'room:NAME' (permanent): its members, the broadcast
%%      |       +- a process per member connection (temporary, added dynamically)
%%      +- acceptor: accepts, starts a connection under the lobby's supervisor
%%
%% A connection is one process in {active, once} mode: the socket's data
%% and the room's lines both come to it as messages. Like the krill
%% server's writer, it writes many lines at once: when a line comes, it
%% takes the others already waiting (up to 64 KiB or 4,096 of them) and
%% sends them with one gen_tcp:send. On /join a new connection process is
%% started under the new room's supervisor and takes the socket over
%% (gen_tcp:controlling_process). A client that does not read is dropped
%% after 5 s of blocked sending (send_timeout), or when more than 100,000
%% lines wait for it.
%%
%% Build and run (port 5556 by default; ulimit -n must allow a descriptor
%% per connection):
%%
%%     erlc -o build/erlang bench/erlang/chat.erl
%%     erl +S 2:2 +P 2000000 +Q 65536 -noshell -pa build/erlang -s chat main -extra --port 5556
%%
%% then, for instance,
%%
%%     build/chat_load --clients 1000 --rooms 10 --msgs 100000 --port 5556 --impl beam
-module(chat).
-behaviour(supervisor).
-export([main/0, start_link/1, init/1, start_room_sup/1, start_room/1, start_acceptor/1,
         start_conn/1, room_init/2, acceptor_init/2, conn_init/2]).

-define(LINE_MAX, 4096).
-define(NAME_MAX, 24).
-define(ROOMS_MAX, 1000).
-define(TAKE_BYTES, 65536).
-define(TAKE_MAX, 4096).
-define(QUEUE_MAX, 100000).
-define(CALL_MS, 5000).
-define(FIND_MS, 2000).

%% ---- the program ------------------------------------------------------------

main() ->
    Port = case init:get_plain_arguments() of
               ["--port", P] -> list_to_integer(P);
               [] -> 5556
           end,
    %% The tree is linked to this process, which lives as long as it does.
    %% It traps exits so that a tree that cannot start (the port is taken)
    %% or that gives up later is a message here, said in one line, and not
    %% a crash of the boot process, which would leave an erl_crash.dump in
    %% the current directory.
    process_flag(trap_exit, true),
    case start_link(Port) of
        {ok, Top} ->
            io:format("chat: listening on 127.0.0.1:~b~n", [Port]),
            receive {'EXIT', Top, Why} -> fail("the server ended: ~p", [Why]) end;
        {error, Why} ->
            fail("cannot start on port ~b: ~p", [Port, Why])
    end.

fail(Fmt, Args) ->
    io:format(standard_error, "chat: " ++ Fmt ++ "~n", Args),
    erlang:halt(1).

start_link(Port) ->
    supervisor:start_link({local, chat}, ?MODULE, {top, Port}).

%% ---- the supervisors ------------------------------------------------------

init({top, Port}) ->
    {ok, {#{strategy => one_for_one, intensity => 3, period => 60},
          [#{id => rooms, type => supervisor,
             start => {supervisor, start_link, [{local, 'chat:rooms'}, ?MODULE, rooms]}},
           #{id => acceptor, shutdown => 1000, start => {?MODULE, start_acceptor, [Port]}}]}};
init(rooms) ->
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10},
          [room_sup_spec(<<"lobby">>)]}};
init({room, Name}) ->
    {ok, {#{strategy => one_for_one, intensity => 3, period => 5},
          [#{id => room, shutdown => 1000, start => {?MODULE, start_room, [Name]}}]}}.

room_sup_spec(Name) ->
    #{id => Name, type => supervisor, start => {?MODULE, start_room_sup, [Name]}}.

start_room_sup(Name) ->
    supervisor:start_link({local, key("rsup:", Name)}, ?MODULE, {room, Name}).

%% Registered names: the set of rooms is bounded (ROOMS_MAX), so are the atoms.
key(Prefix, Name) ->
    list_to_atom(Prefix ++ binary_to_list(Name)).

%% The pid registered under Prefix ++ Name, waiting up to FIND_MS for a
%% process being restarted to register again.
find(Prefix, Name) ->
    find_key(key(Prefix, Name), erlang:monotonic_time(millisecond) + ?FIND_MS).
find_key(Key, Until) ->
    case whereis(Key) of
        undefined ->
            case erlang:monotonic_time(millisecond) >= Until of
                true -> undefined;
                false -> receive after 5 -> find_key(Key, Until) end
            end;
        Pid -> Pid
    end.

%% The room's supervisor, started under the rooms supervisor if the room is new.
room_sup(Name) ->
    room_sup(Name, erlang:monotonic_time(millisecond) + ?FIND_MS).
room_sup(Name, Until) ->
    case whereis(key("rsup:", Name)) of
        undefined ->
            Started = case supervisor:count_children('chat:rooms') of
                          Counts when is_list(Counts) ->
                              case proplists:get_value(specs, Counts) >= ?ROOMS_MAX of
                                  true -> {error, too_many_rooms};
                                  false -> supervisor:start_child('chat:rooms', room_sup_spec(Name))
                              end
                      end,
            case Started of
                {ok, Pid} -> Pid;
                {error, too_many_rooms} -> {error, too_many_rooms};
                _ ->
                    case erlang:monotonic_time(millisecond) >= Until of
                        true -> {error, unavailable};
                        false -> receive after 5 -> room_sup(Name, Until) end
                    end
            end;
        Pid -> Pid
    end.

%% ---- the room --------------------------------------------------------------

start_room(Name) ->
    proc_lib:start_link(?MODULE, room_init, [self(), Name]).

room_init(Parent, Name) ->
    true = register(key("room:", Name), self()),
    proc_lib:init_ack(Parent, {ok, self()}),
    room_loop(Name, #{}).

%% Members: pid => {Nick, MonitorRef}.
room_loop(Name, Members) ->
    receive
        {chat, Lines} ->
            maps:foreach(fun(P, _) -> P ! {out, Lines} end, Members),
            room_loop(Name, Members);
        {join, Pid, Nick} ->
            M1 = case Members of
                     #{Pid := {_, Ref}} -> Members#{Pid := {Nick, Ref}};
                     _ -> Members#{Pid => {Nick, monitor(process, Pid)}}
                 end,
            Pid ! {joined, self(), map_size(M1)},
            room_loop(Name, M1);
        {leave, Pid} ->
            M1 = case maps:take(Pid, Members) of
                     {{_, Ref}, M} -> demonitor(Ref, [flush]), M;
                     error -> Members
                 end,
            Pid ! {left, self()},
            room_loop(Name, M1);
        {rename, Pid, Nick} ->
            M1 = case Members of
                     #{Pid := {_, Ref}} -> Members#{Pid := {Nick, Ref}};
                     _ -> Members
                 end,
            room_loop(Name, M1);
        {who, Pid} ->
            Pid ! {out, who_line(Name, Members)},
            room_loop(Name, Members);
        {crash, Nick} ->
            exit({crashroom, Nick});
        {'DOWN', _, process, Pid, _} ->
            room_loop(Name, maps:remove(Pid, Members))
    end.

who_line(Name, Members) ->
    Nicks = [N || {N, _} <- maps:values(Members)],
    {Shown, More} = take_names(Nicks, 0, []),
    Tail = case More of 0 -> ""; _ -> io_lib:format(" ... and ~b more", [More]) end,
    iolist_to_binary([io_lib:format("* in ~s (~b):", [Name, map_size(Members)]),
                      [[" ", N] || N <- Shown], Tail, "\n"]).

take_names([N | Rest], Len, Acc) when Len + ?NAME_MAX + 2 < 4000 ->
    take_names(Rest, Len + byte_size(N) + 1, [N | Acc]);
take_names(Rest, _, Acc) ->
    {lists:reverse(Acc), length(Rest)}.

%% ---- the acceptor ----------------------------------------------------------

start_acceptor(Port) ->
    proc_lib:start_link(?MODULE, acceptor_init, [self(), Port]).

acceptor_init(Parent, Port) ->
    Opts = [binary, {packet, raw}, {active, false}, {reuseaddr, true}, {backlog, 4096},
            {ip, {127, 0, 0, 1}}, {nodelay, true}, {keepalive, true},
            {send_timeout, 5000}, {send_timeout_close, true}],
    case gen_tcp:listen(Port, Opts) of
        {ok, L} ->
            proc_lib:init_ack(Parent, {ok, self()}),
            accept_loop(L, 1);
        {error, Why} ->
            proc_lib:init_ack(Parent, {error, Why})
    end.

accept_loop(L, N) ->
    case gen_tcp:accept(L) of
        {ok, Sock} ->
            welcome(Sock, N),
            accept_loop(L, N + 1);
        {error, Why} ->
            io:format(standard_error, "chat: accept: ~p~n", [Why]),
            receive after 100 -> accept_loop(L, N) end
    end.

welcome(Sock, N) ->
    Nick = iolist_to_binary(io_lib:format("guest~b", [N])),
    case find("rsup:", <<"lobby">>) of
        undefined -> gen_tcp:close(Sock);
        Sup ->
            case start_conn_under(Sup, <<"lobby">>) of
                {ok, Pid} ->
                    ok = gen_tcp:controlling_process(Sock, Pid),
                    Pid ! {handover, Sock, Nick, <<>>, new};
                _ ->
                    gen_tcp:close(Sock)
            end
    end.

start_conn_under(Sup, Room) ->
    supervisor:start_child(Sup, #{id => {conn, erlang:unique_integer([positive])},
                                  restart => temporary, start => {?MODULE, start_conn, [Room]}}).

%% ---- a connection ----------------------------------------------------------

-record(c, {sock, nick, room_name, room, room_ref, buf = <<>>}).

start_conn(Room) ->
    proc_lib:start_link(?MODULE, conn_init, [self(), Room]).

conn_init(Parent, RoomName) ->
    proc_lib:init_ack(Parent, {ok, self()}),
    receive
        {handover, Sock, Nick, Rest, How} ->
            C = #c{sock = Sock, nick = Nick, room_name = RoomName},
            How =:= new andalso
                say(C, ["* welcome to krill chat, ", Nick, ". Commands: /nick NAME, /join ROOM, "
                        "/who, /quit; to see crashes repaired: /crash, /crashroom"]),
            case join(C, RoomName) of
                {ok, C1, N} ->
                    say(C1, io_lib:format("* joined ~s (~b member~s)", [RoomName, N, plural(N)])),
                    C2 = input(C1, Rest),
                    ok = inet:setopts(Sock, [{active, once}]),
                    loop(C2);
                error ->
                    say(C, ["* cannot join ", RoomName]),
                    gen_tcp:close(Sock)
            end;
        cancel ->
            ok
    after 10000 ->
        ok
    end.

plural(1) -> "";
plural(_) -> "s".

join(C, Name) ->
    case find("room:", Name) of
        undefined -> error;
        Room ->
            Room ! {join, self(), C#c.nick},
            receive
                {joined, Room, N} ->
                    {ok, C#c{room_name = Name, room = Room, room_ref = monitor(process, Room)}, N}
            after ?CALL_MS -> error
            end
    end.

leave(#c{room = undefined}) ->
    ok;
leave(#c{room = Room, room_ref = Ref}) ->
    demonitor(Ref, [flush]),
    Room ! {leave, self()},
    receive {left, Room} -> ok after ?CALL_MS -> ok end.

loop(C = #c{sock = Sock}) ->
    receive
        {out, Data} ->
            write(C, take([Data], byte_size(Data), 1)),
            loop(C);
        {tcp, Sock, Data} ->
            C1 = input(C, Data),
            ok = inet:setopts(Sock, [{active, once}]),
            loop(C1);
        {tcp_closed, Sock} ->
            ok;
        {tcp_error, Sock, _} ->
            ok;
        {'DOWN', Ref, process, _, Why} when Ref =:= C#c.room_ref ->
            Why =:= normal orelse Why =:= shutdown orelse
                say(C, io_lib:format("* room ~s crashed (~p)", [C#c.room_name, Why])),
            self() ! rejoin,
            loop(C#c{room = undefined});
        rejoin ->
            case join(C, C#c.room_name) of
                {ok, C1, N} ->
                    say(C1, io_lib:format("* room ~s restarted: you are back in it (~b member~s)",
                                          [C#c.room_name, N, plural(N)])),
                    loop(C1);
                error ->
                    erlang:send_after(5, self(), rejoin),
                    loop(C)
            end
    end.

%% The lines already waiting, up to TAKE_BYTES or TAKE_MAX of them, in order.
take(Acc, Bytes, N) when Bytes >= ?TAKE_BYTES; N >= ?TAKE_MAX ->
    {message_queue_len, Q} = process_info(self(), message_queue_len),
    Q > ?QUEUE_MAX andalso exit({slow_client, Q}),
    lists:reverse(Acc);
take(Acc, Bytes, N) ->
    receive
        {out, Data} -> take([Data | Acc], Bytes + byte_size(Data), N + 1)
    after 0 ->
        lists:reverse(Acc)
    end.

write(#c{sock = Sock}, Data) ->
    case gen_tcp:send(Sock, Data) of
        ok -> ok;
        {error, _} -> exit(normal) % the client has gone (or would not read for 5 s)
    end.

say(C, Text) ->
    write(C, [Text, "\n"]).

%% Every complete line of Buf0 ++ Data; what is said goes to the room in one message.
input(C = #c{buf = Buf0}, Data) ->
    Buf = <<Buf0/binary, Data/binary>>,
    lines(C, Buf, []).

lines(C, Buf, Said) ->
    case binary:match(Buf, <<"\n">>) of
        {At, 1} when At =< ?LINE_MAX ->
            <<Line0:At/binary, "\n", Rest/binary>> = Buf,
            Line = strip_cr(Line0),
            case Line of
                <<>> -> lines(C, Rest, Said);
                <<"/", _/binary>> ->
                    send_said(C, Said),
                    C1 = command(C, Line, Rest),
                    lines(C1, Rest, []);
                _ -> lines(C, Rest, [[C#c.nick, ": ", Line, "\n"] | Said])
            end;
        nomatch when byte_size(Buf) =< ?LINE_MAX ->
            send_said(C, Said),
            C#c{buf = Buf};
        _ ->
            send_said(C, Said),
            say(C, io_lib:format("* line too long (over ~b bytes): goodbye", [?LINE_MAX])),
            gen_tcp:close(C#c.sock),
            exit(normal)
    end.

strip_cr(L) ->
    case byte_size(L) of
        0 -> L;
        N ->
            case binary:at(L, N - 1) of
                $\r -> binary:part(L, 0, N - 1);
                _ -> L
            end
    end.

send_said(_, []) -> ok;
send_said(C, Said) ->
    case room(C) of
        undefined -> say(C, "* the room is down: your message was not delivered");
        Room -> Room ! {chat, iolist_to_binary(lists:reverse(Said))}
    end.

room(#c{room = Room, room_name = Name}) when Room =:= undefined ->
    find("room:", Name);
room(#c{room = Room}) ->
    Room.

command(C, Line, Rest) ->
    case binary:split(Line, <<" ">>) of
        [<<"/nick">>, Arg] -> nick(C, string:trim(Arg));
        [<<"/nick">>] -> nick(C, <<>>);
        [<<"/join">>, Arg] -> join_cmd(C, string:trim(Arg), Rest);
        [<<"/join">>] -> join_cmd(C, <<>>, Rest);
        [<<"/who">> | _] ->
            case room(C) of
                undefined -> ok;
                Room -> Room ! {who, self()}
            end,
            C;
        [<<"/quit">> | _] ->
            say(C, "* bye"),
            gen_tcp:close(C#c.sock),
            exit(normal);
        [<<"/crash">> | _] ->
            exit({crash, C#c.nick});
        [<<"/crashroom">> | _] ->
            case room(C) of
                undefined -> ok;
                Room -> Room ! {crash, C#c.nick}
            end,
            C;
        [Cmd | _] ->
            say(C, ["* unknown command ", binary:part(Cmd, 0, min(24, byte_size(Cmd)))]),
            C
    end.

valid_name(N) ->
    byte_size(N) >= 1 andalso byte_size(N) =< ?NAME_MAX andalso
        lists:all(fun(Ch) -> (Ch >= $a andalso Ch =< $z) orelse (Ch >= $A andalso Ch =< $Z) orelse
                                 (Ch >= $0 andalso Ch =< $9) orelse Ch =:= $_ orelse Ch =:= $. orelse
                                 Ch =:= $-
                  end, binary_to_list(N)).

nick(C, Name) ->
    case valid_name(Name) of
        false ->
            say(C, "* a nick is 1 to 24 letters, digits, '_', '.' or '-'"),
            C;
        true ->
            C#c.room =/= undefined andalso (C#c.room ! {rename, self(), Name}),
            say(C, ["* you are now ", Name]),
            C#c{nick = Name}
    end.

%% /join NAME: a new connection process under the room's supervisor takes
%% the socket over, with what we have read and not handled, and we end.
join_cmd(C, Name, Rest) ->
    case {valid_name(Name), Name =:= C#c.room_name} of
        {false, _} ->
            say(C, "* a room name is 1 to 24 letters, digits, '_', '.' or '-'"),
            C;
        {_, true} ->
            say(C, "* you are in that room already"),
            C;
        _ ->
            Started = case room_sup(Name) of
                          Sup when is_pid(Sup) -> start_conn_under(Sup, Name);
                          Error -> Error
                      end,
            case Started of
                {ok, Pid} ->
                    leave(C),
                    flush_out(C),
                    ok = gen_tcp:controlling_process(C#c.sock, Pid),
                    Pid ! {handover, C#c.sock, C#c.nick, Rest, moved},
                    exit(normal);
                Why ->
                    say(C, io_lib:format("* cannot join ~s: ~p", [Name, Why])),
                    C
            end
    end.

%% Lines of the room we leave that are already here: write them first.
flush_out(C) ->
    receive
        {out, Data} -> write(C, take([Data], byte_size(Data), 1)), flush_out(C)
    after 0 -> ok
    end.
