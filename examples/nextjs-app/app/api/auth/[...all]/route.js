// Better Auth's own endpoints (/api/auth/*), among them /api/auth/jwks, which the IdP fetches.
import { getAuth } from "@/lib/auth";

export const dynamic = "force-dynamic";

const handle = (request) => getAuth().handler(request);
export { handle as GET, handle as POST };
