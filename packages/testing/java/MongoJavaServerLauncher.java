import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

import java.io.InputStream;
import java.net.InetSocketAddress;
import java.util.List;

/**
 * Starts mongo-java-server (memory backend, oplog on) for caas-db's tests.
 *
 * Usage: java -cp CLASSPATH MongoJavaServerLauncher.java [port]
 *
 * It reports MongoDB 7.0 / wire version 21 because driver 7 refuses servers below wire version 9
 * and the built-in versions stop at 8. It prints "READY <port>" once listening, and shuts down when
 * its standard input closes, so a parent that dies (even by SIGKILL) never leaves it orphaned.
 */
public class MongoJavaServerLauncher {

    static final class ReportedVersion implements MongoVersion {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(7, 0, 0);
        }

        @Override
        public String toVersionString() {
            return "7.0.0";
        }

        @Override
        public int getWireVersion() {
            return 21;
        }
    }

    public static void main(String[] args) throws Exception {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        MongoBackend backend = new MemoryBackend().version(new ReportedVersion());
        MongoServer server = new MongoServer(backend);
        server.enableOplog();
        server.bind(new InetSocketAddress("127.0.0.1", port));
        System.out.println("READY " + server.getLocalAddress().getPort());
        System.out.flush();

        InputStream in = System.in;
        byte[] buffer = new byte[256];
        while (in.read(buffer) >= 0) {
            // The parent writes nothing; reading only detects the pipe closing.
        }
        server.shutdownNow();
        System.exit(0);
    }
}
